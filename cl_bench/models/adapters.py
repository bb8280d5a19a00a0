"""Adapters around a frozen model: modules, named sets of them, and ways to combine sets.

An adapter maps a block's input to a delta added to the block's output (see
:meth:`cl_bench.models.view.ModelView.run_block`). Up-projections start at zero, so a
fresh adapter leaves the network's output exactly unchanged. An :class:`AdapterSet`
owns only its adapters' parameters: saving one writes a small file, never the model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from cl_bench.models.view import ModelView, Place
from cl_bench.utils.config import require
from cl_bench.utils.errors import ClbenchError
from cl_bench.utils.files import write_atomically


@dataclass(frozen=True)
class AdapterConfig:
    """AdaptFormer defaults as SEMA and MOS use them (bottleneck 16)."""

    bottleneck: int = 16
    scale: float = 0.1
    dropout: float = 0.0
    init: Literal["kaiming", "lora"] = "kaiming"

    def __post_init__(self) -> None:
        require(self.bottleneck >= 1, "bottleneck", "must be at least 1")
        require(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")


class Adapter(nn.Module):
    """``scale * up(dropout(relu(down(x))))`` over tokens (ViT) or as 1x1 convolutions (CNN)."""

    def __init__(self, place: Place, kind: str, config: AdapterConfig):
        super().__init__()
        self.scale = config.scale
        if kind == "vit":
            self.down: nn.Module = nn.Linear(place.in_width, config.bottleneck)
            self.up: nn.Module = nn.Linear(config.bottleneck, place.out_width)
        else:
            self.down = nn.Conv2d(place.in_width, config.bottleneck, 1, stride=place.stride)
            self.up = nn.Conv2d(config.bottleneck, place.out_width, 1)
        self.dropout = nn.Dropout(config.dropout)
        with torch.no_grad():
            if config.init == "lora":
                nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
            else:
                nn.init.kaiming_normal_(self.down.weight, nonlinearity="relu")
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.dropout(torch.relu(self.down(x)))) * self.scale


class AdapterMixture(nn.Module):
    """Several adapters at one place, mixed per sample by a router (SEMA).

    ``router`` maps the summary of the block input (token or spatial mean) to one logit
    per adapter; the softmax of those logits weights the adapters' deltas.
    """

    def __init__(self, adapters: Iterable[nn.Module], router: nn.Module, view: ModelView):
        super().__init__()
        self.adapters = nn.ModuleList(adapters)
        self.router = router
        self._summary = view.summary

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.router(self._summary(x)), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.weights(x)
        deltas = torch.stack([adapter(x) for adapter in self.adapters], dim=1)
        shape = weights.shape + (1,) * (deltas.dim() - 2)
        return (weights.view(shape) * deltas).sum(dim=1)


class AdapterSet(nn.Module):
    """A named collection of adapters over chosen blocks of one model view."""

    def __init__(self) -> None:
        super().__init__()
        self.places = nn.ModuleDict()

    @classmethod
    def build(cls, view: ModelView, blocks: Sequence[int], config: AdapterConfig) -> AdapterSet:
        """One fresh adapter on each of ``blocks`` (negative indices count from the end)."""
        adapters = cls()
        for block in blocks:
            index = block % len(view)
            adapters.attach(index, Adapter(view.places[index], view.kind, config))
        return adapters

    def attach(self, block: int, adapter: nn.Module) -> None:
        self.places[str(block)] = adapter

    def detach(self, block: int) -> nn.Module:
        return self.places.pop(str(block))

    def at(self, block: int) -> nn.Module | None:
        return self.places[str(block)] if str(block) in self.places else None  # noqa: SIM401

    @property
    def blocks(self) -> list[int]:
        return sorted(int(key) for key in self.places)

    def first_block(self) -> int | None:
        return min(self.blocks, default=None)

    def save(self, path: Path) -> None:
        """Only this set's parameters (and which blocks they sit on): a small file."""
        payload = {"blocks": self.blocks, "state": self.state_dict()}
        write_atomically(path, lambda tmp: torch.save(payload, tmp))

    def load(self, path: Path) -> None:
        """Load parameters saved by :meth:`save` into this set, which must have the same layout."""
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload["blocks"] != self.blocks:
            raise ClbenchError(
                f"adapter file {path} holds adapters on blocks {payload['blocks']}, "
                f"this set has them on {self.blocks}"
            )
        self.load_state_dict(payload["state"], strict=True)

    def copy(self) -> AdapterSet:
        """An independent copy (e.g. the frozen snapshot MOS stores after a task)."""
        return copy.deepcopy(self)

    @classmethod
    def average(cls, sets: Sequence[AdapterSet]) -> AdapterSet:
        """A new set whose parameters are the element-wise mean of ``sets`` (same layout)."""
        layouts = {tuple(s.state_dict()) for s in sets}
        if len(layouts) != 1:
            raise ClbenchError("cannot average adapter sets with different layouts")
        result = sets[0].copy()
        with torch.no_grad():
            states = [s.state_dict() for s in sets]
            for name, value in result.state_dict(keep_vars=True).items():
                value.copy_(torch.stack([state[name].to(value.device) for state in states]).mean(0))
        return result

    @torch.no_grad()
    def merge_toward(self, others: Sequence[AdapterSet], momentum: float) -> None:
        """``theta <- (1 - momentum) theta + momentum * mean(others' theta)``, in place.

        MOS's adapter merging after every optimiser step; ``others`` are not modified.
        """
        if others:
            self.move_toward(AdapterSet.average(others), momentum)

    @torch.no_grad()
    def move_toward(self, target: AdapterSet, momentum: float) -> None:
        """``theta <- (1 - momentum) theta + momentum * target's theta``, in place.

        For a merge target that stays fixed over many steps (computed once with
        :meth:`average`); ``target`` is not modified.
        """
        goal = target.state_dict()
        for name, value in self.state_dict(keep_vars=True).items():
            value.mul_(1 - momentum).add_(goal[name].to(value.device), alpha=momentum)

"""SEMA's modules at one expandable layer: adapters, descriptors, router, statistics."""

from __future__ import annotations

import math
from collections import deque

import torch
from torch import nn

from cl_bench import (
    Adapter,
    AdapterConfig,
    AdapterMixture,
    Backend,
    ModelView,
    Rebuilder,
    rebuildable,
)


class Descriptor(nn.Module):
    """Representation descriptor: a linear autoencoder D -> hidden -> D on the layer summary.

    Its reconstruction error on a sample, compared with the errors it made on its own
    task (a rolling buffer), says whether the sample comes from a shifted distribution.
    """

    def __init__(self, width: int, hidden: int, buffer_size: int):
        super().__init__()
        self.encode = nn.Linear(width, hidden)
        self.decode = nn.Linear(hidden, width)
        for layer in (self.encode, self.decode):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
            nn.init.zeros_(layer.bias)
        self.register_buffer("center", torch.zeros(width))
        self.register_buffer("spread", torch.ones(width))
        self.losses: deque[float] = deque(maxlen=buffer_size)

    def get_extra_state(self) -> dict[str, list[float]]:
        """The error buffer goes into the state dict (checkpoints, saved models)."""
        return {"losses": list(self.losses)}

    def set_extra_state(self, state: dict[str, list[float]]) -> None:
        self.losses.clear()
        self.losses.extend(state["losses"])

    def fit_scale(self, summaries: torch.Tensor) -> None:
        """Standardise inputs with the descriptor's own training data (see the strategy's notes)."""
        self.center.copy_(summaries.mean(0))
        self.spread.copy_(summaries.std(0) + 1e-6)

    def errors(self, summary: torch.Tensor) -> torch.Tensor:
        """Per-sample reconstruction MSE of the standardised summary."""
        x = (summary - self.center) / self.spread
        return (self.decode(self.encode(x)) - x).pow(2).mean(dim=1)

    def z_scores(self, summary: torch.Tensor) -> torch.Tensor:
        """|error - mean| / std against the buffer (unbiased std; epsilon, unlike the code)."""
        if len(self.losses) <= 2:
            return torch.zeros(len(summary), device=summary.device)
        buffer = torch.tensor(list(self.losses))
        mean, std = buffer.mean().item(), buffer.std().item()
        return (self.errors(summary) - mean).abs() / (std + 1e-8)


class ExpandableRouter(nn.Module):
    """Linear(D -> K) built from one column per adapter, so old columns freeze on their own."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.columns = nn.ModuleList()

    def add_column(self) -> nn.Linear:
        column = nn.Linear(self.width, 1)
        self.columns.append(column)
        return column

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        return torch.cat([column(summary) for column in self.columns], dim=-1)


class SemaLayer(AdapterMixture):
    """The expandable modules at one block: its forward is the router-weighted adapter mix."""

    def __init__(self, view: ModelView, block: int, adapter: AdapterConfig, hidden: int,
                 buffer_size: int):  # fmt: skip
        super().__init__([], ExpandableRouter(view.places[block].in_width), view)
        self.block = block
        self._place, self._kind, self._view = view.places[block], view.kind, view
        self._adapter_config = adapter
        self._hidden, self._buffer_size = hidden, buffer_size
        self.descriptors = nn.ModuleList()
        self.expanded_in: list[int] = []  # experience index of each adapter

    def get_extra_state(self) -> dict[str, list[int]]:
        return {"expanded_in": list(self.expanded_in)}

    def set_extra_state(self, state: dict[str, list[int]]) -> None:
        self.expanded_in = list(state["expanded_in"])

    def describe(self) -> dict[str, int | float]:
        """What rebuilds this layer with as many adapters (Rebuilder; tensors aside)."""
        config = self._adapter_config
        return {"block": self.block, "bottleneck": config.bottleneck, "scale": config.scale,
                "dropout": config.dropout, "hidden": self._hidden,
                "buffer_size": self._buffer_size, "adapters": len(self.adapters)}  # fmt: skip

    @classmethod
    def rebuild(cls, described: dict[str, int | float], backend: Backend) -> SemaLayer:
        config = AdapterConfig(bottleneck=int(described["bottleneck"]),
                               scale=described["scale"], dropout=described["dropout"])  # fmt: skip
        layer = cls(backend.view, int(described["block"]), config, int(described["hidden"]),
                    int(described["buffer_size"]))  # fmt: skip
        for _ in range(int(described["adapters"])):
            layer.expand(-1)  # the experiences come back with the extra state
        return layer.to(backend.device)

    def expand(self, experience: int) -> tuple[Adapter, Descriptor, nn.Linear]:
        """Add one adapter, its descriptor and its router column; return them for training."""
        adapter = Adapter(self._place, self._kind, self._adapter_config)
        descriptor = Descriptor(self._place.in_width, self._hidden, self._buffer_size)
        self.adapters.append(adapter)
        self.descriptors.append(descriptor)
        self.expanded_in.append(experience)
        return adapter, descriptor, self.router.add_column()

    @torch.no_grad()
    def novelty(self, x: torch.Tensor) -> float:
        """min over this layer's descriptors of the batch-mean z-score (SEMA's criterion)
        on the block input ``x``, summarised where the adapters read it."""
        summary = self._summary(self._view.adapter_input(self.block, x))
        return min(float(d.z_scores(summary).mean()) for d in self.descriptors)


rebuildable("sema-layer", Rebuilder(SemaLayer, SemaLayer.describe, SemaLayer.rebuild))

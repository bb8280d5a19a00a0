"""The frozen backbone every strategy shares, and the spec plugins register for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cl_bench.utils.errors import WeightsMismatchError


@dataclass(frozen=True)
class BackboneOptions:
    """What a backbone loader may be asked for.

    ``weights`` is a local checkpoint that replaces a download; ``image_size`` is the
    stream's resolution, for architectures built to a given input size.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    weights: Path | None = None
    image_size: int | None = None


class Backbone:
    """A frozen timm model with the preprocessing its weights were trained with.

    Inputs are uint8 RGB batches (N x 3 x H x W) as streams store them; the backbone
    owns normalisation (and resizing, for models with a fixed input size), so that a
    strategy never needs to know which statistics a checkpoint expects.
    """

    def __init__(
        self,
        *,
        name: str,
        model: nn.Module,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        input_size: int | None,
        weights: dict[str, Any],
        device: torch.device,
        crop_pct: float | None = None,
    ):
        self.name = name
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = device
        self.input_size = input_size
        self.crop_pct = crop_pct  # timm's evaluation crop, for photo streams (None: unknown)
        self.weights = weights
        self._mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.mean, self.std = tuple(mean), tuple(std)

    @property
    def num_features(self) -> int:
        return int(self.model.num_features)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB -> normalised float on the backbone's device."""
        x = images.to(self.device, non_blocking=True).float().div_(255.0)
        if self.input_size is not None and x.shape[-1] != self.input_size:
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        return (x - self._mean) / self._std

    @torch.no_grad()  # not inference_mode: strategies train heads on these features
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled pre-logit features of a uint8 batch (N x num_features)."""
        x = self.model.forward_features(self.preprocess(images))
        return self.model.forward_head(x, pre_logits=True)


@dataclass(frozen=True)
class BackboneSpec:
    """What a plugin registers: a name, a description and a loader."""

    name: str
    description: str
    load: Callable[[BackboneOptions], Backbone] = field(repr=False)


def read_checkpoint(path: Path, origin: str) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (tensors only: weights_only), or an error saying that
    the file is not one; whether it fits the architecture is the loader's check."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise WeightsMismatchError(
            f"{origin}: {path} is not a readable PyTorch checkpoint ({reason})"
        ) from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsMismatchError(f"{origin}: {path} holds no state dict of tensors")
    return state

"""What the PILOT-family methods share: AdaptFormer adapters in every block trained with a
cosine head (first-session adaptation for RanPAC, APER and FeCAM; every session for
EASE). The features of a model that no longer changes (a finished session's adapters)
are computed once per image through ``Backend.fixed``.

As LAMDA-PILOT's ``_init_train``: SGD with momentum over the adapters, the head and its
scale; cosine learning rate to 0 over the epochs, stepped per epoch; cross-entropy on
the session's classes; adapter dropout on while training. Inputs are normalised with the
backbone's own statistics (PILOT feeds [0, 1] pixels). With ``augment=true`` the training
images get PILOT's RandomResizedCrop and flip (:data:`PILOT_AUGMENTATION`); prototypes
and statistics always use the unaugmented images, as PILOT's test-transform loaders do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cl_bench import (
    AdapterConfig,
    AdapterSet,
    Backend,
    RandomResizedCropFlip,
    Runtime,
    require,
    training_inputs,
)

# LAMDA-PILOT utils/data.py build_transform (train): every method of this plugin trains with it.
PILOT_AUGMENTATION = RandomResizedCropFlip()


@dataclass(frozen=True)
class AdaptationConfig:
    """PILOT's CIFAR-100 adapter settings (``exps/ranpac.json``, ``aper_aperpter.json``)."""

    epochs: int = 20
    lr: float = 0.01
    batch_size: int = 48
    weight_decay: float = 5e-4
    momentum: float = 0.9
    bottleneck: int = 64  # AdaptFormer's ffn_num
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1
    augment: bool = False  # PILOT's RandomResizedCrop + flip on the training images

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "bottleneck"):
            require(getattr(self, key) >= 1, key, "must be at least 1")
        require(self.lr > 0, "lr", "must be positive")
        require(self.weight_decay >= 0, "weight_decay", "must be non-negative")
        require(self.adapter_scale >= 0, "adapter_scale", "must be non-negative")
        require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        require(0 <= self.adapter_dropout < 1, "adapter_dropout", "must be in [0, 1)")


class CosineHead(nn.Module):
    """``sigma * cos(x, w_c)`` with a learnable scale starting at 1 (PILOT's CosineLinear)."""

    def __init__(self, width: int, classes: int, generator: torch.Generator):
        super().__init__()
        bound = 1 / math.sqrt(width)
        weight = (torch.rand(classes, width, generator=generator) * 2 - 1) * bound
        self.weight = nn.Parameter(weight)
        self.sigma = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigma * F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T


def train_adapters(
    backbone: Backend,
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: int,
    config: AdaptationConfig,
    runtime: Runtime,
    description: str,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> AdapterSet:
    """A fresh adapter set on every block, trained with a cosine head on ``labels`` in
    ``0 .. classes-1`` (``augment``: the strategy's seeded train transform, or None);
    returned frozen, in eval mode (the head is discarded)."""
    device = backbone.device
    adapter = AdapterConfig(bottleneck=config.bottleneck, scale=config.adapter_scale,
                            dropout=config.adapter_dropout, init="lora")  # fmt: skip
    adapters = AdapterSet.build(backbone.view, range(len(backbone.view)), adapter).to(device)
    head = CosineHead(backbone.num_features, classes, runtime.generator).to(device)
    stems = training_inputs(images, lambda x: backbone.block_input(x, 0), augment)
    labels = labels.to(device)
    parameters = [*adapters.parameters(), *head.parameters()]
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimiser = torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)  # fmt: skip
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs)
    adapters.train()
    for _ in runtime.track(range(config.epochs), total=config.epochs, description=description):
        order = torch.randperm(len(labels), generator=runtime.generator)
        for index in order.split(config.batch_size):
            index = index.to(device)
            logits = head(backbone.forward_from(stems(index), 0, adapters))
            loss = F.cross_entropy(logits, labels[index])
            runtime.log("adapters/loss", loss.detach())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        schedule.step()
    adapters.eval()
    adapters.requires_grad_(False)
    return adapters


def class_means(features: torch.Tensor, labels: torch.Tensor, classes) -> torch.Tensor:
    """One mean feature per class of ``classes``, in that order."""
    labels = labels.to(features.device)
    return torch.stack([features[labels == c].mean(0) for c in classes])

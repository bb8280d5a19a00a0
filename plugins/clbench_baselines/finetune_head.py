"""A linear head over frozen features, fine-tuned on each experience with no memory.

The lower bound of class-incremental learning: cross-entropy over all classes seen
so far, but only the current classes have data, so old classes are overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cl_bench import Experience, Strategy, require


@dataclass(frozen=True)
class FinetuneHeadConfig:
    epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", "must be at least 1")
        require(self.lr > 0, "lr", "must be positive")
        require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", "must be non-negative")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")


class FinetuneHead(Strategy):
    Config = FinetuneHeadConfig

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.head_: nn.Linear | None = None

    def train(self, experience: Experience) -> None:
        config = self.config
        self.head_ = head = self._grown_head(max(experience.classes) + 1)
        # The backbone is frozen and there is no augmentation: compute features once.
        features = self.backbone.features_of(experience.images)
        labels = experience.labels.to(features.device)
        optimiser = torch.optim.SGD(
            head.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        epochs = self.runtime.track(
            range(config.epochs), total=config.epochs, description=f"training on {experience.index}"
        )
        for _ in epochs:
            order = torch.randperm(len(labels), generator=self.runtime.generator).to(labels.device)
            for start in range(0, len(order), config.batch_size):
                index = order[start : start + config.batch_size]
                loss = F.cross_entropy(head(features[index]), labels[index])
                self.runtime.log("head/loss", loss.detach())
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        assert self.head_ is not None, "predict before the first train"
        return self.head_(self.backbone.features(images)).argmax(1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(images)

    def _grown_head(self, num_classes: int) -> nn.Linear:
        """A head with ``num_classes`` outputs that keeps the old rows."""
        head = self.head_
        if head is not None and head.out_features >= num_classes:
            return head
        grown = nn.Linear(self.backbone.num_features, num_classes).to(self.backbone.device)
        if head is None:
            return grown
        with torch.no_grad():
            grown.weight[: head.out_features] = head.weight
            grown.bias[: head.out_features] = head.bias
        return grown

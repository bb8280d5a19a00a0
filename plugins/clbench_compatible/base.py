"""What the compatible-head strategies share: a new representation head per update on
the frozen (cached) backbone features, and a nearest-class-mean classifier whose class
means stay in the space of the model that learned them.

A class's mean is computed once, by the model current when the class was learned, and
never re-embedded: classifying with it later is a retrieval against an old gallery, so
accuracy reflects compatibility too. Each update trains on its experience plus a small
rehearsal memory of old classes' features (:mod:`clbench_compatible.memory`), as the
papers' updates train on old and new classes together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cl_bench import (
    Backend,
    Experience,
    Rebuilder,
    Strategy,
    common_width,
    rebuildable,
    require,
)
from clbench_compatible.memory import FeatureMemory
from clbench_compatible.training import fit


@dataclass(frozen=True)
class HeadConfig:
    """Training of each update's head: OCA's code (Adam, 100 epochs, batch 64, warm-up 5)."""

    width: int = 128
    hidden: int = 512
    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 3.05e-5
    batch_size: int = 64
    warmup_epochs: int = 5
    label_smoothing: float = 0.1
    memory_per_class: int = 20  # rehearsal: frozen features kept per old class; 0 = none

    def __post_init__(self) -> None:
        for key in ("width", "hidden", "epochs", "batch_size"):
            require(getattr(self, key) >= 1, key, "must be at least 1")
        require(self.lr > 0, "lr", "must be positive")
        require(self.weight_decay >= 0, "weight_decay", "must be non-negative")
        require(0 <= self.warmup_epochs <= self.epochs, "warmup_epochs", "must be in [0, epochs]")
        require(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
        require(self.memory_per_class >= 0, "memory_per_class", "must be non-negative")


class RepresentationHead(nn.Module):
    """Frozen backbone feature -> L2-normalised representation: one model of the system."""

    def __init__(self, in_width: int, hidden: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_width, hidden), nn.ReLU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=1)

    def describe(self) -> dict[str, int]:
        first, last = self.net[0], self.net[-1]
        return {"in": first.in_features, "hidden": first.out_features, "width": last.out_features}

    @classmethod
    def rebuild(cls, described: dict[str, int], backend: Backend) -> RepresentationHead:
        return cls(described["in"], described["hidden"], described["width"])


HEAD = RepresentationHead
rebuildable("representation-head", Rebuilder(HEAD, HEAD.describe, HEAD.rebuild))


class CompatibleHeads(Strategy):
    """Subclasses implement :meth:`_learn` (train this update's modules)."""

    Config = HeadConfig

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.heads_ = nn.ModuleList()
        self.class_means_: list[torch.Tensor] = []  # per update, in that update's space
        self.memory_ = FeatureMemory(self.config.memory_per_class)

    # --- the contract ---------------------------------------------------------------
    def train(self, experience: Experience) -> None:
        features = self.backbone.features_of(experience.images)
        labels = experience.labels.to(features.device)
        training_features, training_labels = self.memory_.with_new(features, labels)
        classes, targets = training_labels.unique(return_inverse=True)
        head = self._new_head(experience.index).to(self.backbone.device)
        self._learn(head, training_features, targets, len(classes), experience)
        head.requires_grad_(False).eval()
        self.heads_.append(head)
        with torch.no_grad():
            embedded = head(features)
        self.class_means_.append(torch.stack([
            F.normalize(embedded[labels == c].mean(0), dim=0) for c in experience.classes
        ]))  # fmt: skip
        self.memory_.add(features, labels, self.runtime.generator)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads_[-1](self.backbone.features(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.predict_and_embed(images)[0]

    @torch.no_grad()
    def predict_and_embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        queries = self.embed(images)
        scores = []
        for step, means in enumerate(self.class_means_):
            mapped, means = common_width(self.to_model_space(queries, step), means)
            scores.append(F.normalize(mapped, dim=1) @ F.normalize(means, dim=1).T)
        return torch.cat(scores, dim=1).argmax(1), queries

    def rehearsal_samples(self) -> int:
        return len(self.memory_)

    def report(self) -> dict[str, Any]:
        return {"representation_widths": [head.net[-1].out_features for head in self.heads_]}

    # --- for subclasses -------------------------------------------------------------
    def _new_head(self, step: int) -> RepresentationHead:
        config = self.config
        return RepresentationHead(self.backbone.num_features, config.hidden, self._width(step))

    def _width(self, step: int) -> int:
        return self.config.width

    def _learn(self, head: RepresentationHead, features: torch.Tensor, labels: torch.Tensor,
               num_classes: int, experience: Experience) -> None:  # fmt: skip
        """Train this update's modules; ``labels`` index the training set's ``num_classes``.

        Default: cross-entropy through a linear classifier.
        """
        classifier = nn.Linear(head.net[-1].out_features, num_classes).to(features.device)

        def loss(index: torch.Tensor) -> torch.Tensor:
            logits = classifier(head(features[index]))
            return F.cross_entropy(logits, labels[index],
                                   label_smoothing=self.config.label_smoothing)  # fmt: skip

        self._fit([*head.parameters(), *classifier.parameters()], loss, len(labels),
                  f"head {experience.index + 1}")  # fmt: skip

    def _fit(self, parameters, loss, size: int, description: str) -> None:
        config = self.config
        fit(parameters, loss, size, epochs=config.epochs, lr=config.lr,
            weight_decay=config.weight_decay, batch_size=config.batch_size,
            warmup_epochs=config.warmup_epochs, runtime=self.runtime,
            description=description)  # fmt: skip

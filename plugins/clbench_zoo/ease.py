"""EASE (Zhou et al., CVPR 2024): one adapter set per session on the frozen backbone, each
spanning a subspace; prototypes of every class in every subspace, synthesised for old
classes in newer subspaces from their semantic neighbours.

As the official code (CVPR24-Ease, identical in LAMDA-PILOT):
- every session trains a fresh adapter set (all blocks, bottleneck 64, scale 0.1,
  dropout 0.1) with its own cosine head on the session's classes only, then freezes it;
- f_j(x) is the feature under adapter set j; a new class gets a real prototype (its
  mean f_j) in every subspace j that exists when it arrives;
- an old class c of session i gets its prototype in a newer subspace j by the semantic-
  guided complement (``recalc_sim``, the default): the softmax over the classes of
  sessions j..T of their cosine similarity to c in c's own subspace i weights those
  classes' prototypes in subspace j; recomputed every session;
- the logit of class c (session i) is ``cos(f_i, P[c, i]) + (alpha / T) * sum_{j != i}
  cos(f_j, P[c, j])``, T the index of the current session, cosines per subspace.
Departures: inputs normalised with the backbone's statistics (as for every strategy
here); finished adapter sets are registered modules (the official code keeps them in a
plain list, outside checkpoints and ``.to()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cl_bench import AdapterSet, Experience, FixedComputation, Strategy, require
from clbench_zoo.adaptation import PILOT_AUGMENTATION, AdaptationConfig, class_means, train_adapters


@dataclass(frozen=True)
class EaseConfig(AdaptationConfig):
    """Defaults of the official CIFAR-100 config (``exps/ease.json``, B0 Inc5)."""

    lr: float = 0.025
    alpha: float = 0.1  # weight of the other subspaces, shared among them

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.alpha >= 0, "alpha", "must be non-negative")


class Ease(Strategy):
    Config = EaseConfig
    augmentation = PILOT_AUGMENTATION

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.adapters_ = nn.ModuleList()  # one frozen set per session
        self._features: list[FixedComputation] = []
        width, device = self.backbone.num_features, self.backbone.device
        self.prototypes_ = torch.empty(0, 0, width, device=device)  # class x subspace x width
        self.session_of_class_ = torch.empty(0, dtype=torch.int64, device=device)

    def train(self, experience: Experience) -> None:
        known = len(self.session_of_class_)
        adapters = train_adapters(
            self.backbone, experience.images, experience.labels - known,
            len(experience.classes), self.config, self.runtime,
            f"EASE adapter {experience.index + 1}", self.train_transform,
        )  # fmt: skip
        self.adapters_.append(adapters)
        self._features.append(self._subspace(adapters))
        session = experience.index
        new = torch.stack([
            class_means(features(experience.images), experience.labels, experience.classes)
            for features in self._features
        ], dim=1)  # fmt: skip
        grown = F.pad(self.prototypes_, (0, 0, 0, 1))  # old classes: a new, empty subspace
        self.prototypes_ = torch.cat([grown, new.to(grown.device)])
        self.session_of_class_ = torch.cat([
            self.session_of_class_,
            torch.full((len(experience.classes),), session, device=self.session_of_class_.device),
        ])  # fmt: skip
        self._complement(session)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).argmax(1)

    @torch.no_grad()
    def predict_and_embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        subspaces = self._subspace_features(images)
        return self._logits_of(subspaces).argmax(1), torch.cat(subspaces, dim=1)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self._logits_of(self._subspace_features(images))

    def _logits_of(self, subspaces: list[torch.Tensor]) -> torch.Tensor:
        current = len(subspaces) - 1
        own = F.one_hot(self.session_of_class_, len(subspaces)).T.float()  # subspace x class
        weight = own + (1 - own) * (self.config.alpha / current if current else 0.0)
        logits = torch.zeros(len(subspaces[0]), len(self.session_of_class_), device=weight.device)
        for j, features in enumerate(subspaces):
            cosine = F.normalize(features, dim=1) @ F.normalize(self.prototypes_[:, j], dim=1).T
            logits += weight[j] * cosine
        return logits

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """All subspaces side by side; the first ones never change once learned."""
        return torch.cat(self._subspace_features(images), dim=1)

    def report(self) -> dict[str, Any]:
        per_set = sum(p.numel() for p in self.adapters_[0].parameters())
        return {"adapter_sets": len(self.adapters_), "parameters_per_set": per_set}

    # --- helpers --------------------------------------------------------------------
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._features = [self._subspace(adapters) for adapters in self.adapters_]

    def _subspace(self, adapters: AdapterSet) -> FixedComputation:
        """One session's subspace, frozen for good: memoised per image."""
        return self.backbone.fixed_under(adapters)

    def _subspace_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [features(images).to(self.prototypes_.device) for features in self._features]

    def _complement(self, current: int) -> None:
        """Prototypes of old classes in newer subspaces, from their semantic neighbours."""
        sessions = self.session_of_class_
        for i in range(current):
            old = (sessions == i).nonzero().squeeze(1)
            for j in range(i + 1, current + 1):
                reference = (sessions >= j).nonzero().squeeze(1)
                similarity = (
                    F.normalize(self.prototypes_[old, i], dim=1)
                    @ F.normalize(self.prototypes_[reference, i], dim=1).T
                )
                weights = torch.softmax(similarity, dim=1)
                self.prototypes_[old, j] = weights @ self.prototypes_[reference, j]

"""A class-balanced rehearsal memory of frozen backbone features.

The papers' updates train on old and new classes together: OCA's and lambda-orth's new
model sees the whole extended training set, CL2R keeps a rehearsal memory. In a
class-incremental stream the old images are gone, so each update keeps a few of them,
as CL2R and PyCIL do (20 per class is PyCIL's 2,000 exemplars for CIFAR-100). The
backbone is frozen and training uses no augmentation, so its features stand in for
the images exactly and cost a fraction of the space.
"""

from __future__ import annotations

import torch


class FeatureMemory:
    """Up to ``per_class`` randomly chosen (seeded) features of every class seen."""

    def __init__(self, per_class: int):
        self.per_class = per_class
        self.features: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.labels is None else len(self.labels)

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"features": self.features, "labels": self.labels}

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        self.features, self.labels = state["features"], state["labels"]

    def with_new(self, features: torch.Tensor, labels: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """The update's training set: the new data followed by the memory."""
        if self.features is None:
            return features, labels
        return torch.cat([features, self.features]), torch.cat([labels, self.labels])

    def add(self, features: torch.Tensor, labels: torch.Tensor,
            generator: torch.Generator) -> None:  # fmt: skip
        """Keep ``per_class`` random images of each new class (all of a smaller class)."""
        if self.per_class == 0:
            return
        kept = []
        for label in labels.unique().tolist():
            index = (labels == label).nonzero().flatten().cpu()
            order = torch.randperm(len(index), generator=generator)[: self.per_class]
            kept.append(index[order])
        index = torch.cat(kept).to(labels.device)
        self.features, self.labels = self.with_new(features[index], labels[index])

"""SimpleCIL (Zhou et al., IJCV 2024): class prototypes on a frozen model, cosine classifier."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cl_bench import Experience, Strategy, require


@dataclass(frozen=True)
class SimpleCILConfig:
    batch_size: int = 256  # feature extraction only; does not change results

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "batch_size", "must be at least 1")


class SimpleCIL(Strategy):
    Config = SimpleCILConfig

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.prototypes_ = torch.empty(0, self.backbone.num_features, device=self.backbone.device)

    def train(self, experience: Experience) -> None:
        features = self.backbone.features_of(experience.images, self.config.batch_size)
        labels = experience.labels.to(features.device)
        new = torch.stack([features[labels == c].mean(0) for c in experience.classes])
        self.prototypes_ = torch.cat([self.prototypes_, new])

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        features = F.normalize(self.backbone.features(images), dim=1)
        return (features @ F.normalize(self.prototypes_, dim=1).T).argmax(1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(images)

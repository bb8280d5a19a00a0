"""APER with adapters (formerly ADAM; Zhou et al., IJCV 2024): adapt on the first session,
then a prototype classifier on the pretrained and the adapted features side by side.

As LAMDA-PILOT's ``models/aper_adapter.py``: adapters tuned on the first session only
(its cosine head discarded); the feature is ``[f_pretrained(x) ; f_adapted(x)]``, the
raw concatenation (pretrained first, no per-branch normalisation); a class's prototype
is the mean of that feature over its training images, computed once when the class
arrives; logits are the cosine to each prototype (scale 1, never trained).

Only the adapter variant runs here: the other PETL variants of APER change the network
in ways the shared backend does not offer (VPT inserts prompt tokens, SSF scales and
shifts every layer's output, full fine-tuning would copy the backbone), so ``petl``
takes ``adapter`` alone and names the others in its error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cl_bench import AdapterSet, Experience, FixedComputation, Strategy, require
from clbench_zoo.adaptation import PILOT_AUGMENTATION, AdaptationConfig, class_means, train_adapters

UNSUPPORTED_PETL = ("ssf", "vpt", "finetune")


@dataclass(frozen=True)
class AperConfig(AdaptationConfig):
    """Defaults of the official CIFAR-100 config (``exps/aper_aperpter.json``)."""

    petl: str = "adapter"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.petl == "adapter", "petl",
            f"must be 'adapter': APER's {', '.join(UNSUPPORTED_PETL)} variants need "
            "changes to the backbone that the shared backend does not make",
        )  # fmt: skip


class Aper(Strategy):
    Config = AperConfig
    augmentation = PILOT_AUGMENTATION

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.adapters_ = None
        self._features: FixedComputation | None = None  # fixed after the first session
        width = 2 * self.backbone.num_features
        self.prototypes_ = torch.empty(0, width, device=self.backbone.device)

    def train(self, experience: Experience) -> None:
        if experience.index == 0:
            self.adapters_ = adapters = train_adapters(
                self.backbone, experience.images, experience.labels, len(experience.classes),
                self.config, self.runtime, "APER first session", self.train_transform,
            )  # fmt: skip
            self._features = self._feature_computation(adapters)
        features = self._features(experience.images)
        new = class_means(features, experience.labels, experience.classes)
        self.prototypes_ = torch.cat([self.prototypes_, new.to(self.prototypes_.device)])

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.predict_and_embed(images)[0]

    @torch.no_grad()
    def predict_and_embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.embed(images)
        features = F.normalize(embedded.to(self.prototypes_.device), dim=1)
        return (features @ F.normalize(self.prototypes_, dim=1).T).argmax(1), embedded

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The concatenated feature: the prototype classifier's space, fixed after the
        first session."""
        return self._features(images)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.adapters_ is not None:
            self._features = self._feature_computation(self.adapters_)

    def _feature_computation(self, adapters: AdapterSet) -> FixedComputation:
        """The frozen and the adapted feature side by side, memoised per image."""
        return self.backbone.fixed(
            lambda x: torch.cat([self.backbone.features(x), self.backbone.forward(x, adapters)],
                                dim=1)
        )  # fmt: skip

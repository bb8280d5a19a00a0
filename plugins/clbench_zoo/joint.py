"""Joint training: the non-continual reference that every paper of this line reports.

At each experience it keeps everything seen so far and trains a fresh model on the union
of experiences 0..t: a linear head over the frozen (cached) features, with the settings
of ``finetune-head``, or with ``--set adapters=true`` also a fresh adapter set on every
block (MOS's adapter settings). It is a reference, not a continual method: leaderboards
mark its rows so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cl_bench import AdapterConfig, AdapterSet, Experience, Strategy, require


@dataclass(frozen=True)
class JointConfig:
    """finetune-head's settings for the head; MOS's adapter settings with adapters=true."""

    epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    adapters: bool = False
    bottleneck: int = 16
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "bottleneck"):
            require(getattr(self, key) >= 1, key, "must be at least 1")
        require(self.lr > 0, "lr", "must be positive")
        require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", "must be non-negative")
        require(0 <= self.adapter_dropout < 1, "adapter_dropout", "must be in [0, 1)")


class Joint(Strategy):
    Config = JointConfig

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        device = self.backbone.device
        # Everything seen so far: frozen features (head only) or the images (adapters).
        self.inputs_: torch.Tensor | None = None
        self.labels_ = torch.empty(0, dtype=torch.int64, device=device)
        self.head_: nn.Linear | None = None
        self.adapters_: AdapterSet | None = None

    def train(self, experience: Experience) -> None:
        config, device = self.config, self.backbone.device
        if config.adapters:
            new = self.backbone.block_input(experience.images, 0)  # the frozen stem, cached
        else:
            new = self.backbone.features_of(experience.images)
        self.inputs_ = new if self.inputs_ is None else torch.cat([self.inputs_, new])
        self.labels_ = torch.cat([self.labels_, experience.labels.to(device)])
        seen = max(experience.classes) + 1
        self.head_ = nn.Linear(self.backbone.num_features, seen).to(device)
        trained: list[nn.Module] = [self.head_]
        if config.adapters:
            adapter = AdapterConfig(bottleneck=config.bottleneck, scale=config.adapter_scale,
                                    dropout=config.adapter_dropout, init="lora")  # fmt: skip
            view = self.backbone.view
            self.adapters_ = AdapterSet.build(view, range(len(view)), adapter).to(device)
            trained.append(self.adapters_)
        self._fit(trained, experience.index)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.predict_and_embed(images)[0]

    @torch.no_grad()
    def predict_and_embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.embed(images)
        return self.head_(features).argmax(1), features

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        if self.adapters_ is None:
            return self.backbone.features(images)
        return self.backbone.forward(images, self.adapters_)

    def rehearsal_samples(self) -> int:
        return len(self.labels_)  # it keeps every sample it has seen

    def _fit(self, modules: list[nn.Module], task: int) -> None:
        config = self.config
        parameters = [p for module in modules for p in module.parameters()]
        optimiser = torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)  # fmt: skip
        for module in modules:
            module.train()
        for _ in self.runtime.track(range(config.epochs), total=config.epochs,
                                    description=f"joint training on 0..{task}"):  # fmt: skip
            order = torch.randperm(len(self.labels_), generator=self.runtime.generator)
            for index in order.to(self.labels_.device).split(config.batch_size):
                loss = F.cross_entropy(self.head_(self._forward(index)), self.labels_[index])
                self.runtime.log("joint/loss", loss.detach())
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        for module in modules:
            module.eval()
            module.requires_grad_(False)

    def _forward(self, index: torch.Tensor) -> torch.Tensor:
        if self.adapters_ is None:
            return self.inputs_[index]
        return self.backbone.forward_from(self.inputs_[index], 0, self.adapters_)

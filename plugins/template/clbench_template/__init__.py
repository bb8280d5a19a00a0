"""Template strategy plugin: nearest class mean with Euclidean distance on frozen features."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cl_bench import Experience, LoggerSpec, Strategy, StrategySpec, hookimpl, require
from clbench_template.logger import CsvLogger


@dataclass(frozen=True)
class TemplateConfig:
    batch_size: int = 128

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "batch_size", "must be at least 1")


class NearestMeanEuclidean(Strategy):
    Config = TemplateConfig

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Learned state ends in "_": Strategy.state_dict() saves it (checkpoints, saved
        # models) and load_state_dict() sets it on a fresh instance; a tensor needs no more.
        self.means_ = torch.empty(0, self.backbone.num_features, device=self.backbone.device)

    def train(self, experience: Experience) -> None:
        features = self.backbone.features_of(experience.images, self.config.batch_size)
        labels = experience.labels.to(features.device)
        means = [features[labels == c].mean(0) for c in experience.classes]
        self.means_ = torch.cat([self.means_, torch.stack(means)])

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cdist(self.backbone.features(images), self.means_).argmin(1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(images)


@hookimpl
def cl_bench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec(
            "template-ncm",
            "template plugin: nearest class mean, Euclidean distance",
            NearestMeanEuclidean,
        )
    ]


@hookimpl
def cl_bench_loggers() -> list[LoggerSpec]:
    """A logger is a plugin too: ``clbench evaluate --log template-csv:FOLDER``."""
    return [LoggerSpec("template-csv", "template logger: a CSV file per run", CsvLogger)]

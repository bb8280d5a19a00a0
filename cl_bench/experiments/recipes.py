"""A run's recipe: the strategy's defaults, its official settings for the stream's family,
then the user's ``--set``, each later one winning.

Where a strategy's official code ships a config for the stream's data set family, that
is the run's default: a run on ImageNet-R trains as the paper did, and its variant names
only what the user changed from it. The record says which settings came from where.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cl_bench.data.spec import StreamSpec
from cl_bench.training.strategy import OfficialSettings, StrategySpec
from cl_bench.utils.config import build_config, canonical_overrides, yaml_text


@dataclass(frozen=True)
class Recipe:
    """The validated config of one run and where its values come from."""

    config: Any
    overrides: dict[str, str]  # the user's, canonical, without those equal to the default
    official: OfficialSettings | None
    family: str | None
    augmentation: str | None  # the training transform, when the run augments

    def describe(self) -> dict[str, Any]:
        """For the run record: the family, the official settings applied and their
        source, the user's overrides, and the training augmentation if any."""
        return {
            "family": self.family,
            "official_source": self.official.source if self.official else None,
            "official_settings": (
                {key: yaml_text(value) for key, value in self.official.settings.items()}
                if self.official
                else {}
            ),
            "overrides": dict(self.overrides),
            "augmentation": self.augmentation,
        }


def resolve_recipe(
    strategy: StrategySpec, stream: StreamSpec, overrides: Mapping[str, Any]
) -> Recipe:
    """The config a run of ``strategy`` on ``stream`` uses with ``overrides`` (``--set``)."""
    official = strategy.official_for(stream.family)
    base = dict(official.settings) if official else {}
    config_cls = strategy.strategy.Config
    canonical = canonical_overrides(config_cls, overrides, base)
    config = build_config(config_cls, {**base, **canonical})
    declared = strategy.strategy.augmentation
    augmentation = repr(declared) if declared is not None and config.augment else None
    return Recipe(config, canonical, official, stream.family, augmentation)

"""clbench: class-incremental benchmarks on frozen pretrained models.

The plugin API: everything a strategy, stream or backbone plugin needs is exported
here, and plugins import nothing else from clbench (the lint check enforces it for the
plugins in this repository). The subpackages below are internal and may change.

Names are imported on first use (PEP 562), so that ``import cl_bench`` and commands
that need no model (``clbench --help``, ``clbench leaderboard``) do not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "RandomResizedCropFlip": "cl_bench.data.augmentation",
    "training_inputs": "cl_bench.data.augmentation",
    "Experience": "cl_bench.data.experience",
    "StreamInfo": "cl_bench.data.experience",
    "StreamSpec": "cl_bench.data.spec",
    "LabelledImages": "cl_bench.data.streams",
    "common_width": "cl_bench.evaluation.compatibility",
    "Adapter": "cl_bench.models.adapters",
    "AdapterConfig": "cl_bench.models.adapters",
    "AdapterMixture": "cl_bench.models.adapters",
    "AdapterSet": "cl_bench.models.adapters",
    "Backbone": "cl_bench.models.backbones.base",
    "BackboneOptions": "cl_bench.models.backbones.base",
    "BackboneSpec": "cl_bench.models.backbones.base",
    "Backend": "cl_bench.models.backend",
    "FixedComputation": "cl_bench.models.fixed",
    "ModelView": "cl_bench.models.view",
    "Place": "cl_bench.models.view",
    "ClassGaussians": "cl_bench.training.alignment",
    "align_classifier": "cl_bench.training.alignment",
    "OfficialSettings": "cl_bench.training.strategy",
    "Origin": "cl_bench.training.strategy",
    "Rebuilder": "cl_bench.training.state",
    "Choice": "cl_bench.training.search",
    "Range": "cl_bench.training.search",
    "StateError": "cl_bench.training.state",
    "decode_state": "cl_bench.training.state",
    "encode_state": "cl_bench.training.state",
    "rebuildable": "cl_bench.training.state",
    "saved_length": "cl_bench.training.state",
    "Runtime": "cl_bench.training.strategy",
    "ExperienceDone": "cl_bench.training.tracking",
    "LoggerSpec": "cl_bench.training.tracking",
    "RunEnd": "cl_bench.training.tracking",
    "RunLogger": "cl_bench.training.tracking",
    "RunStart": "cl_bench.training.tracking",
    "Strategy": "cl_bench.training.strategy",
    "StrategySpec": "cl_bench.training.strategy",
    "require": "cl_bench.utils.config",
    "ConfigError": "cl_bench.utils.errors",
    "hookimpl": "cl_bench.utils.hooks",
}

__all__ = [
    "Adapter",
    "AdapterConfig",
    "AdapterMixture",
    "AdapterSet",
    "Backbone",
    "BackboneOptions",
    "BackboneSpec",
    "Backend",
    "Choice",
    "ClassGaussians",
    "ConfigError",
    "Experience",
    "ExperienceDone",
    "FixedComputation",
    "LabelledImages",
    "LoggerSpec",
    "ModelView",
    "OfficialSettings",
    "Origin",
    "Place",
    "RandomResizedCropFlip",
    "Range",
    "Rebuilder",
    "RunEnd",
    "RunLogger",
    "RunStart",
    "Runtime",
    "StateError",
    "Strategy",
    "StrategySpec",
    "StreamInfo",
    "StreamSpec",
    "__version__",
    "align_classifier",
    "common_width",
    "decode_state",
    "encode_state",
    "hookimpl",
    "rebuildable",
    "require",
    "saved_length",
    "training_inputs",
]  # the names of _EXPORTS, and the version


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cl_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # what type checkers and IDEs see; the same names as _EXPORTS
    from cl_bench.data.augmentation import RandomResizedCropFlip, training_inputs
    from cl_bench.data.experience import Experience, StreamInfo
    from cl_bench.data.spec import StreamSpec
    from cl_bench.data.streams import LabelledImages
    from cl_bench.evaluation.compatibility import common_width
    from cl_bench.models.adapters import Adapter, AdapterConfig, AdapterMixture, AdapterSet
    from cl_bench.models.backbones.base import Backbone, BackboneOptions, BackboneSpec
    from cl_bench.models.backend import Backend
    from cl_bench.models.view import ModelView, Place
    from cl_bench.training.alignment import ClassGaussians, align_classifier
    from cl_bench.training.search import Choice, Range
    from cl_bench.training.state import (
        Rebuilder,
        StateError,
        decode_state,
        encode_state,
        rebuildable,
        saved_length,
    )
    from cl_bench.training.strategy import (
        OfficialSettings,
        Origin,
        Runtime,
        Strategy,
        StrategySpec,
    )
    from cl_bench.training.tracking import (
        ExperienceDone,
        LoggerSpec,
        RunEnd,
        RunLogger,
        RunStart,
    )
    from cl_bench.utils.config import require
    from cl_bench.utils.errors import ConfigError
    from cl_bench.utils.hooks import hookimpl

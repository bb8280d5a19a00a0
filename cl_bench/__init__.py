"""clbench: class-incremental benchmarks on frozen pretrained models.

The plugin API: everything a strategy, stream or backbone plugin needs is exported
here, and plugins import nothing else from clbench (the lint check enforces it for the
plugins in this repository). The subpackages below are internal and may change.
"""

from cl_bench.data.experience import Experience, StreamInfo
from cl_bench.data.spec import StreamSpec
from cl_bench.evaluation.compatibility import common_width
from cl_bench.models.adapters import Adapter, AdapterConfig, AdapterMixture, AdapterSet
from cl_bench.models.backbones.base import Backbone, BackboneOptions, BackboneSpec
from cl_bench.models.backend import Backend
from cl_bench.models.view import ModelView, Place
from cl_bench.training.alignment import ClassGaussians, align_classifier
from cl_bench.training.strategy import Runtime, Strategy, StrategySpec
from cl_bench.utils.config import require
from cl_bench.utils.errors import ConfigError
from cl_bench.utils.hooks import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "AdapterConfig",
    "AdapterMixture",
    "AdapterSet",
    "Backbone",
    "BackboneOptions",
    "BackboneSpec",
    "Backend",
    "ClassGaussians",
    "ConfigError",
    "Experience",
    "ModelView",
    "Place",
    "Runtime",
    "Strategy",
    "StrategySpec",
    "StreamInfo",
    "StreamSpec",
    "__version__",
    "align_classifier",
    "common_width",
    "hookimpl",
    "require",
]

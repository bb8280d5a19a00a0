"""clbench: class-incremental benchmarks on frozen pretrained models.

Plugin authors need only what is exported here: the ``hookimpl`` marker, the
``Strategy`` base class and the spec types their hooks return.
"""

from cl_bench.backbones.base import Backbone, BackboneOptions, BackboneSpec
from cl_bench.experience import Experience, StreamInfo
from cl_bench.hookspecs import hookimpl
from cl_bench.strategy import Runtime, Strategy, StrategySpec
from cl_bench.stream_spec import StreamSpec

__version__ = "0.1.0"

__all__ = [
    "Backbone",
    "BackboneOptions",
    "BackboneSpec",
    "Experience",
    "Runtime",
    "Strategy",
    "StrategySpec",
    "StreamInfo",
    "StreamSpec",
    "__version__",
    "hookimpl",
]

"""The whole plugin contract: four hooks, each returning the specs a plugin provides.

A plugin is a module with functions decorated by ``@hookimpl`` and named like the
specifications below, exposed through an entry point in the ``cl_bench`` group::

    [project.entry-points.cl_bench]
    my_plugin = "my_package.plugin_module"

Hooks take no arguments and return a list, so that one plugin may provide several
entries; returning an empty list is fine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cl_bench.utils.hooks import hookspec

if TYPE_CHECKING:
    from cl_bench.data.spec import StreamSpec
    from cl_bench.models.backbones.base import BackboneSpec
    from cl_bench.training.strategy import StrategySpec
    from cl_bench.training.tracking import LoggerSpec


@hookspec
def cl_bench_strategies() -> list[StrategySpec]:
    """Return the continual-learning strategies this plugin provides."""


@hookspec
def cl_bench_streams() -> list[StreamSpec]:
    """Return the class-incremental streams this plugin provides."""


@hookspec
def cl_bench_backbones() -> list[BackboneSpec]:
    """Return the frozen pretrained backbones this plugin provides."""


@hookspec
def cl_bench_loggers() -> list[LoggerSpec]:
    """Return the run loggers (experiment trackers) this plugin provides."""

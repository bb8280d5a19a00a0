"""Discovers plugins through entry points and indexes what they register.

Built-in strategies, streams and backbones are found the same way as third-party
ones, so the public path is the tested path. A plugin that fails to import or to
register is skipped with a warning naming it; two plugins claiming one name is an
error naming both distributions, because silently picking one would make results
depend on install order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any, Generic, TypeVar

import pluggy

from cl_bench.data.spec import StreamSpec
from cl_bench.models.backbones.base import BackboneSpec
from cl_bench.training import hookspecs
from cl_bench.training.strategy import StrategySpec
from cl_bench.training.tracking import LoggerSpec
from cl_bench.utils.errors import DuplicateNameError, UnknownNameError, plural
from cl_bench.utils.hooks import PROJECT_NAME

ENTRY_POINT_GROUP = "cl_bench"

SpecT = TypeVar("SpecT", StrategySpec, StreamSpec, BackboneSpec, LoggerSpec)


class PluginWarning(UserWarning):
    """A plugin could not be loaded or could not register; it was skipped."""


@dataclass(frozen=True)
class Provided(Generic[SpecT]):
    """A registered spec and who provides it."""

    spec: SpecT
    distribution: str
    plugin: str


@dataclass(frozen=True)
class _Kind:
    name: str
    hook: str
    spec_type: type


_KINDS = (
    _Kind("strategy", "cl_bench_strategies", StrategySpec),
    _Kind("stream", "cl_bench_streams", StreamSpec),
    _Kind("backbone", "cl_bench_backbones", BackboneSpec),
    _Kind("logger", "cl_bench_loggers", LoggerSpec),
)


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that failed to load or to register: shown by ``clbench list``, skipped."""

    distribution: str
    plugin: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} of distribution {self.distribution!r} {self.error}"


@dataclass
class Registry:
    strategies: dict[str, Provided[StrategySpec]] = field(default_factory=dict)
    streams: dict[str, Provided[StreamSpec]] = field(default_factory=dict)
    backbones: dict[str, Provided[BackboneSpec]] = field(default_factory=dict)
    loggers: dict[str, Provided[LoggerSpec]] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)

    @classmethod
    def discover(cls, group: str = ENTRY_POINT_GROUP) -> Registry:
        """Load every plugin of the entry-point group ``group``."""
        eps = _unique(entry_points(group=group))
        return cls.from_plugins((_distribution_name(ep), ep.name, ep.load) for ep in eps)

    @classmethod
    def from_plugins(
        cls, plugins: Iterable[tuple[str, str, Callable[[], ModuleType | Any]]]
    ) -> Registry:
        """Build from ``(distribution, plugin name, loader)`` triples (the seam tests use)."""
        registry = cls()
        manager = pluggy.PluginManager(PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        for distribution, name, load in plugins:
            module = None
            try:
                module = load()
                manager.register(module, name=f"{distribution}:{name}")
                manager.check_pending()  # a hook name with a typo would otherwise never run
            except Exception as error:  # a broken plugin must not take the others down
                if module is not None and manager.is_registered(module):
                    manager.unregister(module)
                registry._warn(distribution, name, f"failed to load and is skipped: {error!r}")
                continue
            for kind in _KINDS:
                registry._collect(manager, module, kind, distribution, name)
        return registry

    def _collect(
        self,
        manager: pluggy.PluginManager,
        module: Any,
        kind: _Kind,
        distribution: str,
        plugin: str,
    ) -> None:
        label = f"plugin {plugin!r} of distribution {distribution!r}"
        impls = [i for i in getattr(manager.hook, kind.hook).get_hookimpls() if i.plugin is module]
        for impl in impls:
            try:
                specs = list(impl.function())
                bad = [s for s in specs if not isinstance(s, kind.spec_type)]
                if bad:
                    raise TypeError(
                        f"{kind.hook} returned {bad[0]!r}, not a {kind.spec_type.__name__}"
                    )
            except Exception as error:
                self._warn(
                    distribution,
                    plugin,
                    f"failed to register its {plural(kind.name)} and is skipped: {error!r}",
                )
                continue
            table = self._table(kind.name)
            for spec in specs:
                if spec.name in table:
                    first = table[spec.name]
                    raise DuplicateNameError(
                        f"{kind.name} {spec.name!r} is registered twice: by distribution "
                        f"{first.distribution!r} (plugin {first.plugin!r}) and by distribution "
                        f"{distribution!r} ({label}). Uninstall one of them, or rename the "
                        f"{kind.name} in one of them."
                    )
                table[spec.name] = Provided(spec, distribution, plugin)

    def _table(self, kind: str) -> dict[str, Provided[Any]]:
        tables = {"strategy": self.strategies, "stream": self.streams,
                  "backbone": self.backbones, "logger": self.loggers}  # fmt: skip
        return tables[kind]

    def _warn(self, distribution: str, plugin: str, error: str) -> None:
        problem = PluginProblem(distribution, plugin, error)
        self.problems.append(problem)
        warnings.warn(str(problem), PluginWarning, stacklevel=3)

    def strategy(self, name: str) -> StrategySpec:
        return self._lookup("strategy", name)

    def stream(self, name: str) -> StreamSpec:
        return self._lookup("stream", name)

    def backbone(self, name: str) -> BackboneSpec:
        return self._lookup("backbone", name)

    def logger(self, name: str) -> LoggerSpec:
        return self._lookup("logger", name)

    def provider(self, kind: str, name: str) -> Provided[Any]:
        table = self._table(kind)
        if name not in table:
            raise UnknownNameError(kind, name, table)
        return table[name]

    def _lookup(self, kind: str, name: str) -> Any:
        return self.provider(kind, name).spec


def _distribution_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "<unknown distribution>"


def _unique(eps: Iterable[EntryPoint]) -> list[EntryPoint]:
    """The same distribution seen twice on sys.path is one plugin, not a duplicate."""
    seen: dict[tuple[str, str, str], EntryPoint] = {}
    for ep in eps:
        seen.setdefault((_distribution_name(ep), ep.name, ep.value), ep)
    return list(seen.values())

"""The grid of a sweep: strategies x streams x backbones x seeds, from a YAML file and
command-line flags, checked whole before any run starts."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cl_bench.data.streams import SPLITS
from cl_bench.experiments.names import resolve_backbone, resolve_stream
from cl_bench.experiments.recipes import resolve_recipe
from cl_bench.experiments.runs import RunSpec, resolve_device
from cl_bench.training.registry import Registry
from cl_bench.utils.config import parse_assignments, yaml_text
from cl_bench.utils.errors import ConfigError, shortened
from cl_bench.utils.files import folder_problem
from cl_bench.utils.threads import DEFAULT_THREADS
from cl_bench.utils.untrusted import read_yaml

GRID_KEYS = (
    "strategy",
    "stream",
    "backbone",
    "seed",
    "set",
    "increment",
    "initial-classes",
    "limit-per-class",
    "split",
    "weights",
    "device",
    "threads",
    "gpus-per-run",
    "log",
    "cache",
    "checkpoints",
    "resume",
    "keep-checkpoints",
    "output",
    "leaderboards",
)
_DEFAULTS: dict[str, Any] = {
    "set": {},
    "increment": None,
    "initial-classes": None,
    "limit-per-class": None,
    "split": "test",
    "weights": None,
    "device": "auto",
    "threads": DEFAULT_THREADS,
    "gpus-per-run": None,  # none, or 1 for runs on --device cuda
    "log": (),  # experiment trackers, NAME[:ARG] each
    "cache": True,
    "checkpoints": None,  # the cache's checkpoints/ folder
    "resume": True,
    "keep-checkpoints": False,
    "output": "runs",
    "leaderboards": "leaderboards",
}


@dataclass(frozen=True)
class StrategyEntry:
    """A strategy of the grid, with overrides of its own (a variant such as
    ``sema`` with ``classifier_alignment: true``) on top of the grid's ``set``."""

    name: str
    overrides: Mapping[str, str]


@dataclass(frozen=True)
class Grid:
    """Every combination of the names and seeds, with options shared by all runs."""

    strategies: tuple[StrategyEntry, ...]
    streams: tuple[str, ...]
    backbones: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: Mapping[str, str]
    increment: int | None
    initial_classes: int | None
    limit_per_class: int | None
    split: str
    weights: Path | None
    device: str
    threads: int
    use_cache: bool
    output: Path
    leaderboards: Path
    checkpoints: Path | None = None
    resume: bool = True
    keep_checkpoints: bool = False
    gpus_per_run: float = 0.0  # asked of the executor for each run (a share, or whole GPUs)
    log: tuple[str, ...] = ()  # experiment trackers of every run
    group: str | None = None  # the sweep, for trackers to group its runs by

    def runs(self) -> list[RunSpec]:
        return [
            RunSpec(
                strategy=strategy.name,
                stream=stream,
                backbone=backbone,
                seed=seed,
                overrides={**self.overrides, **strategy.overrides},
                increment=self.increment,
                initial_classes=self.initial_classes,
                limit_per_class=self.limit_per_class,
                split=self.split,
                weights=self.weights,
                device=self.device,
                threads=self.threads,
                use_cache=self.use_cache,
                checkpoints=self.checkpoints,
                resume=self.resume,
                keep_checkpoints=self.keep_checkpoints,
                log=self.log,
                group=self.group,
            )
            for stream in self.streams
            for backbone in self.backbones
            for strategy in self.strategies
            for seed in self.seeds
        ]


def read_grid_file(path: Path) -> dict[str, Any]:
    """The keys of a YAML grid file; an unknown key is an error listing the valid ones."""
    values = read_yaml(path, "grid file") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"grid file {path} must be a mapping of keys such as `strategy:`")
    unknown = sorted(str(key) for key in values if key not in GRID_KEYS)
    if unknown:
        raise ConfigError(
            f"grid file {path}: unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; valid keys: {', '.join(GRID_KEYS)}"
        )
    return values


def make_grid(
    file_values: Mapping[str, Any], flags: Mapping[str, Any], defaults: Mapping[str, Any]
) -> Grid:
    """A grid from a grid file's keys, command-line flags on top, then ``defaults``.

    A flag that was given replaces the file's value for its key, except ``set``, whose
    keys are merged (the command line wins for a key set in both).
    """
    given = {key: value for key, value in flags.items() if value not in (None, ())}
    values = {**_DEFAULTS, **defaults, **file_values, **given}
    overrides = {**_assignments(file_values.get("set", {})), **_assignments(given.get("set", ()))}
    if not _strategies(values.get("strategy")):
        raise ConfigError(
            "no strategy: give --strategy NAME (repeatable) or `strategy:` in the grid file"
        )
    limit = _count(values, "limit-per-class", minimum=1)
    for key in ("cache", "resume", "keep-checkpoints"):
        if not isinstance(values[key], bool):
            raise ConfigError(f"{key} must be true or false, got {shortened(values[key])}")
    checkpoints = values["checkpoints"]
    if checkpoints is not None:
        if not isinstance(checkpoints, str | Path):
            raise ConfigError(f"checkpoints must be a folder path, got {shortened(checkpoints)}")
        checkpoints = Path(checkpoints).absolute()  # a worker's working folder may not be ours
        if problem := folder_problem(checkpoints):
            raise ConfigError(f"checkpoints {shortened(str(checkpoints))} {problem}")
    backbones = _names(values["backbone"], "backbone")
    weights = values["weights"]
    if weights is not None:
        if not isinstance(weights, str | Path) or len(backbones) != 1:
            raise ConfigError(
                f"weights must be one checkpoint file for one backbone, got "
                f"{shortened(weights)} for backbones {shortened(list(backbones))}; sweep "
                "backbones with their own weights one backbone at a time"
            )
        weights = Path(weights).absolute()  # a worker's working folder may not be ours
    if values["split"] not in SPLITS:
        raise ConfigError(
            f"unknown split {shortened(values['split'])}; choose one of {', '.join(SPLITS)}"
        )
    seeds = _listed(values["seed"], "seed")
    for position, seed in enumerate(seeds):
        if not (_is_int(seed) and 0 <= seed < 2**32):
            raise ConfigError(
                f"seeds must be integers in 0..{2**32 - 1}; seed {position + 1} of "
                f"{len(seeds)} is {shortened(seed)}"
            )
    for key in ("output", "leaderboards"):
        if not isinstance(values[key], str | Path):
            raise ConfigError(f"{key} must be a folder path, got {shortened(values[key])}")
        problem = folder_problem(Path(values[key]))
        if problem:
            raise ConfigError(f"{key} {shortened(str(values[key]))} {problem}")
    return Grid(
        strategies=_strategies(values["strategy"]),
        streams=_names(values["stream"], "stream"),
        backbones=backbones,
        seeds=tuple(dict.fromkeys(seeds)),
        overrides=overrides,
        increment=_count(values, "increment", minimum=1),
        initial_classes=_count(values, "initial-classes", minimum=0),
        limit_per_class=limit,
        split=values["split"],
        weights=weights,
        device=str(values["device"]),
        threads=_count(values, "threads", minimum=1),
        gpus_per_run=_gpus(values["gpus-per-run"], str(values["device"])),
        log=_names(values["log"], "log") if values["log"] else (),
        group=time.strftime("sweep-%Y%m%d-%H%M%S"),
        use_cache=values["cache"],
        output=Path(values["output"]),
        leaderboards=Path(values["leaderboards"]),
        checkpoints=checkpoints,
        resume=values["resume"],
        keep_checkpoints=values["keep-checkpoints"],
    )


def _gpus(value: Any, device: str) -> float:
    """GPUs each run asks its executor for: as given, else one for runs on ``cuda``."""
    if value is None:
        return 1.0 if device == "cuda" else 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"gpus-per-run must be a number above 0, got {shortened(value)}")
    if device.startswith("cuda:"):
        raise ConfigError(f"device {shortened(device)} with gpus-per-run: the executor assigns "
                          "each run its GPUs; use device cuda (or auto)")  # fmt: skip
    return float(value)


def _count(values: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = values[key]
    if value is not None and (not _is_int(value) or value < minimum):
        raise ConfigError(f"{key} must be an integer of at least {minimum}, got {shortened(value)}")
    return value


def _listed(value: Any, key: str) -> tuple[Any, ...]:
    items = tuple(value) if isinstance(value, list | tuple) else (value,)
    if not items or any(item is None for item in items):
        raise ConfigError(f"{key}: expected a value or a list of values, got {shortened(value)}")
    return items


def _names(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = _listed(value, key)
    if not all(isinstance(item, str) and item for item in items):
        raise ConfigError(f"{key}: expected names, got {shortened(value)}")
    return tuple(dict.fromkeys(items))  # repeated names would name the same record


def _strategies(value: Any) -> tuple[StrategyEntry, ...]:
    """Names, or mappings ``{name: NAME, set: {KEY: VALUE}}`` for a strategy's variant."""
    if value is None:
        return ()
    entries = []
    for item in _listed(value, "strategy"):
        if isinstance(item, Mapping):
            unknown = sorted(str(key) for key in item if key not in ("name", "set"))
            if unknown or not isinstance(item.get("name"), str) or not item["name"]:
                raise ConfigError(
                    f"strategy: a variant is a mapping with `name:` and optionally `set:`, "
                    f"got {shortened(dict(item))}"
                )
            entries.append(StrategyEntry(item["name"], _assignments(item.get("set", {}))))
        elif isinstance(item, str) and item:
            entries.append(StrategyEntry(item, {}))
        else:
            raise ConfigError(f"strategy: expected names or variants, got {shortened(value)}")
    unique = {(entry.name, tuple(sorted(entry.overrides.items()))): entry for entry in entries}
    return tuple(unique.values())  # repeated entries would name the same record


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _assignments(value: Any) -> dict[str, str]:
    """``set`` as ``KEY=VALUE`` strings (flags, or a YAML list) or a YAML mapping.

    Mapping values are written back as YAML scalars (``true``, ``0.01``), so a grid file
    and ``--set`` name the same variant, hence the same record.
    """
    if isinstance(value, Mapping):
        return {str(key): yaml_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return parse_assignments(value)
    raise ConfigError(
        f"set: expected a mapping KEY: VALUE or a list of KEY=VALUE, got {shortened(value)}"
    )


def checked_runs(
    runs: Sequence[RunSpec], registry: Registry, devices_here: bool = True
) -> list[RunSpec]:
    """The runs with their overrides in canonical form (as :func:`resolve_recipe` gives
    them, relative to the stream's official settings), every name and config checked
    before any compute: a typo fails at once, and two entries that would write the same
    record (a name and its spec file) are refused. ``devices_here``: the runs' devices
    must exist on this machine (not for runs on a Ray cluster, whose nodes have them)."""
    checked = []
    by_path: dict[Path, RunSpec] = {}
    for spec in runs:
        stream = resolve_stream(registry, spec.stream, spec.increment, spec.initial_classes)
        try:  # --set applies to every strategy of the grid
            recipe = resolve_recipe(registry.strategy(spec.strategy), stream, spec.overrides)
            spec = replace(spec, overrides=recipe.overrides)
        except ConfigError as error:
            raise ConfigError(f"strategy {shortened(spec.strategy)}: {error}") from error
        if spec.weights is not None and not spec.weights.is_file():
            raise ConfigError(f"weights file {spec.weights} does not exist")
        other = by_path.setdefault(spec.record_path(Path()), spec)
        if other is not spec:
            raise ConfigError(
                f"{shortened(other.label)} and {shortened(spec.label)} would write the same "
                "record; give each stream or backbone once"
            )
        resolve_backbone(registry, spec.backbone)
        resolve_device(spec.device, here=devices_here)
        checked.append(spec)
    return checked

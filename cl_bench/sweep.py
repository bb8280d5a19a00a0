"""Sweeps: a grid of strategies x streams x backbones x seeds, each cell one run.

A run is a :class:`RunSpec` (names, seed, options). :func:`evaluate_run` and
:func:`write_run` turn it into a written record and heat map; ``clbench evaluate`` and
every sweep worker go through these two, so a sweep writes the same records, under the
same paths, that single runs would. (Workers use one torch thread each, so a trained
strategy's numbers can differ from a single multi-threaded run in the last digits: CPU
reductions depend on the thread count; the record says how many threads ran it.) The
parent process writes every file, so records land in one folder even
when the runs execute on a Ray cluster.

A run whose record exists is skipped, so an interrupted or partly failed sweep resumes
by running it again. A run that raises leaves a failure note beside its record's path
(:func:`cl_bench.records.failure_path`); the next sweep retries it, and its record
replaces the note.
"""

from __future__ import annotations

import json
import os
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from rich.table import Table

from cl_bench.config import build_config, parse_assignments
from cl_bench.console import table
from cl_bench.errors import ClbenchError, ConfigError
from cl_bench.evaluation import evaluate, resolve_backbone, resolve_stream, stream_name
from cl_bench.executors import Executor
from cl_bench.heatmaps import write_compatibility_heatmap
from cl_bench.paths import CACHE_ENV, DATA_ENV, data_root, write_atomically
from cl_bench.records import failure_path, record_path, utc_now, variant_of, write_record
from cl_bench.registry import PluginWarning, Registry

SPLITS = ("test", "validation")
GRID_KEYS = (
    "strategy",
    "stream",
    "backbone",
    "seed",
    "set",
    "limit-per-class",
    "split",
    "device",
    "output",
    "leaderboards",
)
_DEFAULTS: dict[str, Any] = {
    "set": {},
    "limit-per-class": None,
    "split": "test",
    "device": "auto",
    "output": "runs",
    "leaderboards": "leaderboards",
}


@dataclass(frozen=True)
class RunSpec:
    """One run: what ``clbench evaluate`` takes, and what names its record."""

    strategy: str
    stream: str
    backbone: str
    seed: int
    overrides: Mapping[str, str] = field(default_factory=dict)
    limit_per_class: int | None = None
    split: str = "test"
    weights: Path | None = None
    device: str = "auto"
    use_cache: bool = True
    increment: int | None = None  # for an image folder given by path
    initial_classes: int | None = None

    @property
    def variant(self) -> str:
        return variant_of(self.overrides, self.limit_per_class, self.split)

    @property
    def label(self) -> str:
        variant = f" [{self.variant}]" if self.variant else ""
        return f"{self.strategy} on {self.stream} with {self.backbone}, seed {self.seed}{variant}"

    def record_path(self, root: Path) -> Path:
        return record_path(
            root,
            stream=stream_name(self.stream, self.increment, self.initial_classes),
            strategy=self.strategy,
            backbone=self.backbone,
            seed=self.seed,
            variant=self.variant,
        )


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available; a CUDA device that is not there is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ClbenchError(
            f"--device {name!r} is not a device; use cpu, cuda, cuda:N or auto"
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ClbenchError(f"--device {name}: no CUDA device is available; use --device cpu")
    return device


def evaluate_run(
    spec: RunSpec, registry: Registry, track: Callable[..., Iterator[Any]] | None = None
) -> dict[str, Any]:
    """The run record of ``spec`` (nothing written)."""
    return evaluate(
        registry,
        strategy=spec.strategy,
        stream=spec.stream,
        backbone=spec.backbone,
        seed=spec.seed,
        overrides=spec.overrides,
        limit_per_class=spec.limit_per_class,
        split=spec.split,
        weights=spec.weights,
        device=resolve_device(spec.device),
        use_cache=spec.use_cache,
        track=track,
        increment=spec.increment,
        initial_classes=spec.initial_classes,
    )


def write_run(root: Path, record: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``record`` under ``root`` and its compatibility heat map beside it.

    The heat map first: a record on disk means its run is complete, so it goes last.
    Returns the paths of the record and of the heat map.
    """
    path = record_path(
        root,
        stream=record["stream"],
        strategy=record["strategy"],
        backbone=record["backbone"],
        seed=record["seed"],
        variant=record["variant"],
    )
    heatmap = write_compatibility_heatmap(
        dict(record), path.with_name(f"{path.stem}-compatibility.png")
    )
    write_record(path, record)
    return path, heatmap


@dataclass(frozen=True)
class Grid:
    """Every combination of the names and seeds, with options shared by all runs."""

    strategies: tuple[str, ...]
    streams: tuple[str, ...]
    backbones: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: Mapping[str, str]
    limit_per_class: int | None
    split: str
    device: str
    output: Path
    leaderboards: Path

    def runs(self) -> list[RunSpec]:
        return [
            RunSpec(
                strategy=strategy,
                stream=stream,
                backbone=backbone,
                seed=seed,
                overrides=dict(self.overrides),
                limit_per_class=self.limit_per_class,
                split=self.split,
                device=self.device,
            )
            for stream in self.streams
            for backbone in self.backbones
            for strategy in self.strategies
            for seed in self.seeds
        ]


def read_grid_file(path: Path) -> dict[str, Any]:
    """The keys of a YAML grid file; an unknown key is an error listing the valid ones."""
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"grid file {path} is unreadable: {error}") from error
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
    if not _names(values.get("strategy"), "strategy"):
        raise ConfigError(
            "no strategy: give --strategy NAME (repeatable) or `strategy:` in the grid file"
        )
    limit = values["limit-per-class"]
    if limit is not None and (not _is_int(limit) or limit < 1):
        raise ConfigError(f"limit-per-class must be an integer of at least 1, got {limit!r}")
    if values["split"] not in SPLITS:
        raise ConfigError(f"unknown split {values['split']!r}; choose one of {', '.join(SPLITS)}")
    seeds = _listed(values["seed"], "seed")
    if not all(_is_int(seed) for seed in seeds):
        raise ConfigError(f"seeds must be integers, got {list(seeds)}")
    return Grid(
        strategies=_names(values["strategy"], "strategy"),
        streams=_names(values["stream"], "stream"),
        backbones=_names(values["backbone"], "backbone"),
        seeds=tuple(dict.fromkeys(seeds)),
        overrides=overrides,
        limit_per_class=limit,
        split=values["split"],
        device=str(values["device"]),
        output=Path(values["output"]),
        leaderboards=Path(values["leaderboards"]),
    )


def _listed(value: Any, key: str) -> tuple[Any, ...]:
    items = tuple(value) if isinstance(value, list | tuple) else (value,)
    if not items or any(item is None for item in items):
        raise ConfigError(f"{key}: expected a value or a list of values, got {value!r}")
    return items


def _names(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = _listed(value, key)
    if not all(isinstance(item, str) and item for item in items):
        raise ConfigError(f"{key}: expected names, got {value!r}")
    return tuple(dict.fromkeys(items))  # repeated names would name the same record


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _assignments(value: Any) -> dict[str, str]:
    """``set`` as ``KEY=VALUE`` strings (flags, or a YAML list) or a YAML mapping.

    Mapping values are written back as YAML scalars (``true``, ``0.01``), so a grid file
    and ``--set`` name the same variant, hence the same record.
    """
    if isinstance(value, Mapping):
        return {str(key): _yaml_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return parse_assignments(value)
    raise ConfigError(f"set: expected a mapping KEY: VALUE or a list of KEY=VALUE, got {value!r}")


def _yaml_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def validate(runs: Sequence[RunSpec], registry: Registry) -> None:
    """Every name and config of the sweep, before any compute: a typo fails at once, and
    two entries that would write the same record (a name and its spec file) are refused."""
    by_path: dict[Path, RunSpec] = {}
    for spec in runs:
        other = by_path.setdefault(spec.record_path(Path()), spec)
        if other is not spec:
            raise ConfigError(
                f"{other.label!r} and {spec.label!r} would write the same record; "
                "give each stream or backbone once"
            )
        resolve_stream(registry, spec.stream, spec.increment, spec.initial_classes)
        resolve_backbone(registry, spec.backbone)
        try:
            build_config(registry.strategy(spec.strategy).strategy.Config, spec.overrides)
        except ConfigError as error:  # --set applies to every strategy of the grid
            raise ConfigError(f"strategy {spec.strategy!r}: {error}") from error
        resolve_device(spec.device)


@dataclass(frozen=True)
class Attempt:
    """What a worker sends back: the record, or the error as text (always picklable)."""

    spec: RunSpec
    seconds: float
    record: dict[str, Any] | None = None
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None


def attempt_run(
    spec: RunSpec, cache_dir: str | None = None, data_root: str | None = None
) -> Attempt:
    """Evaluate ``spec`` in a worker with one torch thread; an exception becomes a failure."""
    if cache_dir:
        os.environ[CACHE_ENV] = cache_dir  # the parent's cache, also on Ray workers
    if data_root:
        os.environ[DATA_ENV] = data_root
    torch.set_num_threads(1)  # workers share the cores: more threads each would thrash
    clock = time.perf_counter()
    try:
        record = evaluate_run(spec, _worker_registry())
    except Exception as error:
        return Attempt(
            spec,
            time.perf_counter() - clock,
            error_type=type(error).__name__,
            error=str(error),
            traceback=traceback.format_exc(),
        )
    return Attempt(spec, time.perf_counter() - clock, record=record)


def lost_attempt(spec: RunSpec, error: BaseException) -> Attempt:
    """A run whose worker died (killed, out of memory, node lost): a failure like any other."""
    text = "".join(traceback.format_exception(error))
    return Attempt(
        spec,
        0.0,
        error_type=type(error).__name__,
        error=f"the worker running it was lost: {error}",
        traceback=text,
    )


@cache
def _worker_registry() -> Registry:
    with warnings.catch_warnings():  # the parent has already reported plugin problems
        warnings.simplefilter("ignore", PluginWarning)
        return Registry.discover()


@dataclass(frozen=True)
class Outcome:
    spec: RunSpec
    status: Literal["ran", "skipped", "failed"]
    path: Path  # the record, or the failure note
    seconds: float | None = None
    error: str | None = None


def run_sweep(runs: Sequence[RunSpec], output: Path, executor: Executor) -> Iterator[Outcome]:
    """Skipped runs first, then each run as it finishes, its files already written.

    Closing the iterator early (Ctrl-C) stops the executor's workers.
    """
    todo = []
    for spec in runs:
        path = spec.record_path(output)
        if path.is_file():
            yield Outcome(spec, "skipped", path)
        else:
            todo.append(spec)
    cache_root = os.environ.get(CACHE_ENV)  # made absolute: a Ray worker's folder is not ours
    work = partial(
        attempt_run,
        cache_dir=str(Path(cache_root).resolve()) if cache_root else None,
        data_root=str(data_root()),
    )
    with closing(executor.run(work, todo, lost_attempt)) as attempts:
        for attempt in attempts:
            yield _settle(attempt, output)


def _settle(attempt: Attempt, output: Path) -> Outcome:
    spec = attempt.spec
    if attempt.record is not None:
        path, _ = write_run(output, attempt.record)
        return Outcome(spec, "ran", path, attempt.seconds)
    note = failure_path(spec.record_path(output))
    failure = {
        "failed": True,
        "stream": spec.stream,
        "strategy": spec.strategy,
        "backbone": spec.backbone,
        "seed": spec.seed,
        "variant": spec.variant,
        "overrides": dict(spec.overrides),
        "limit_per_class": spec.limit_per_class,
        "split": spec.split,
        "device": spec.device,
        "error_type": attempt.error_type,
        "error": attempt.error,
        "traceback": attempt.traceback,
        "seconds": attempt.seconds,
        "time": utc_now(),
    }
    text = json.dumps(failure, indent=2, sort_keys=True) + "\n"
    write_atomically(note, lambda tmp: tmp.write_text(text))
    return Outcome(spec, "failed", note, attempt.seconds, f"{attempt.error_type}: {attempt.error}")


def outcome_table(outcomes: Sequence[Outcome]) -> Table:
    """One row per run, in grid order: ran, skipped, or failed with its error."""
    rows = [
        (
            o.spec.strategy,
            o.spec.stream,
            o.spec.backbone,
            o.spec.seed,
            o.spec.variant or "default",
            o.status,
            "" if o.seconds is None else f"{o.seconds:.1f}",
            o.error if o.status == "failed" else str(o.path),
        )
        for o in outcomes
    ]
    counts = {
        status: sum(o.status == status for o in outcomes) for status in ("ran", "skipped", "failed")
    }
    title = "sweep: " + ", ".join(f"{n} {status}" for status, n in counts.items())
    columns = [
        "strategy",
        "stream",
        "backbone",
        "seed",
        "variant",
        "outcome",
        "seconds",
        "record, or error",
    ]
    return table(title, columns, rows, numeric=False)

"""Run events for experiment trackers: what a logger plugin receives, and the fan-out
that keeps a failing logger from costing the run.

A logger plugin returns :class:`LoggerSpec` objects from its ``cl_bench_loggers`` hook;
``--log NAME[:ARGUMENT]`` makes one :class:`RunLogger` per run through ``spec.make``.
A run tells its loggers, in order: :meth:`RunLogger.start` (identity, config, recipe,
provenance), :meth:`RunLogger.scalar` as strategies report training values
(``runtime.log``), :meth:`RunLogger.experience` after each experience (the accuracy
row, compatibility, times), :meth:`RunLogger.end` (every metric, the record and its
files) and :meth:`RunLogger.close` (also after a failed run, with its error).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunStart:
    """A run as it starts: ``identity`` names it as its record will (stream, strategy,
    backbone, seed, variant); ``group`` is the sweep it belongs to, if any."""

    identity: Mapping[str, Any]
    config: Mapping[str, Any]
    recipe: Mapping[str, Any]
    provenance: Mapping[str, Any]
    # the record's path under the records folder, without ".json": safe as a folder
    # name (clbench's one mapping of names to paths), one per run
    path: str
    group: str | None = None
    resumed_after_experience: int | None = None
    # an exported record's SHA-256 (``clbench export``): trackers keep it, so that a
    # second export can tell it is there already (:meth:`RunLogger.holds`)
    record_sha256: str | None = None

    @property
    def label(self) -> str:
        variant = f" [{self.identity['variant']}]" if self.identity.get("variant") else ""
        return (f"{self.identity['strategy']} on {self.identity['stream']} with "
                f"{self.identity['backbone']}, seed {self.identity['seed']}{variant}")  # fmt: skip


@dataclass(frozen=True)
class ExperienceDone:
    """One experience learned and evaluated: ``accuracy`` holds the accuracy (%) on each
    experience seen so far, ``average`` on all their test images together."""

    index: int
    accuracy: Sequence[float]
    average: float
    train_seconds: float
    eval_seconds: float
    compatibility: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RunEnd:
    """The finished run: its summary metrics, the whole record, and its files (the
    record as JSON and the compatibility heat map), to keep as artifacts."""

    metrics: Mapping[str, Any]
    record: Mapping[str, Any]
    artifacts: Sequence[Path] = ()


class RunLogger:
    """Base class of a logger: override what you record; every method is optional."""

    def holds(self, run: RunStart) -> bool:
        """Whether the tracker already holds this exported record (``run.record_sha256``):
        ``clbench export`` then skips it. A logger that cannot tell says False."""
        return False

    def start(self, run: RunStart) -> None:
        """The run begins."""

    def scalar(self, name: str, value: float, step: int) -> None:
        """A training value a strategy reported (``runtime.log``)."""

    def experience(self, done: ExperienceDone) -> None:
        """An experience was learned and evaluated."""

    def end(self, run: RunEnd) -> None:
        """The run finished; its record and heat map exist as ``run.artifacts``."""

    def close(self, error: BaseException | None) -> None:
        """Release what the logger holds; ``error`` is why the run failed, if it did."""


class RunStopped(Exception):
    """Raised by a logger that ends the run on purpose (a tuning trial pruned for doing
    worse than the others at the same experience); it is not a logger failure."""


@dataclass(frozen=True)
class LoggerSpec:
    """A logger plugin's entry: ``make(argument)`` builds a fresh logger for one run
    (``argument`` is what follows ``NAME:`` in ``--log``, or None). ``requires`` are
    modules it imports, checked before any run; ``install`` says how to get them."""

    name: str
    description: str
    make: Callable[[str | None], RunLogger]
    requires: tuple[str, ...] = ()
    install: str = ""


@dataclass
class Loggers:
    """A run's loggers behind one call each. A logger that raises is named in a warning
    once and dropped for the rest of the run: a tracking server that goes away or a full
    disk never costs the run or its record."""

    loggers: list[tuple[str, RunLogger]] = field(default_factory=list)
    warn: Callable[[str], None] = lambda message: warnings.warn(message, stacklevel=3)

    def __bool__(self) -> bool:
        return bool(self.loggers)

    def start(self, run: RunStart) -> None:
        self._each("start", run)

    def scalar(self, name: str, value: float, step: int) -> None:
        self._each("scalar", name, value, step)

    def experience(self, done: ExperienceDone) -> None:
        self._each("experience", done)

    def end(self, run: RunEnd) -> None:
        self._each("end", run)

    def close(self, error: BaseException | None = None) -> None:
        self._each("close", error)
        self.loggers = []

    @contextmanager
    def for_run(self, start: RunStart) -> Iterator[Loggers]:
        """Start the loggers, and close them when the run ends, with its error if it
        fails (the error goes on)."""
        self.start(start)
        try:
            yield self
        except BaseException as error:
            self.close(error)
            raise
        self.close()

    def _each(self, method: str, *arguments: Any) -> None:
        for entry in list(self.loggers):
            name, logger = entry
            try:
                getattr(logger, method)(*arguments)
            except RunStopped:
                raise
            except Exception as error:
                self.loggers.remove(entry)
                self.warn(f"warning: logger {name} failed ({type(error).__name__}: "
                          f"{str(error)[:200]}); the run goes on without it")  # fmt: skip

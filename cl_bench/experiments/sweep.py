"""Sweeps: run every cell of a grid on an executor and write what each run gives.

Each run goes through :func:`cl_bench.experiments.runs.evaluate_run` in a fresh worker
process (so that its recorded peak memory is its own, not the worker's lifetime peak),
with the run's own torch thread count (``RunSpec.threads``, 1 by default: workers share
the cores, and a single ``clbench evaluate`` gives the same record). The parent process
writes every file, so records land in one folder even when the runs execute on a Ray
cluster.

A run whose record exists is skipped, so an interrupted or partly failed sweep resumes
by running it again; the record is read first (schema, and that it is this run's), so a
bad one stops the sweep before anything runs. A run that fails (it raises, its worker
dies, or its record cannot be written) leaves a failure note beside its record's path
(:func:`cl_bench.results.records.failure_path`); the next sweep retries it, and its record
replaces the note.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal

from cl_bench.experiments.executors import Executor
from cl_bench.experiments.runs import RunSpec, evaluate_run, write_run
from cl_bench.results.records import failure_path, path_of_record, read_record, utc_now
from cl_bench.training.registry import PluginWarning, Registry
from cl_bench.utils.errors import RecordError, shortened
from cl_bench.utils.files import CACHE_ENV, DATA_ENV, data_root, write_atomically


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
    spec: RunSpec,
    cache_dir: str | None = None,
    data_root: str | None = None,
) -> Attempt:
    """Evaluate ``spec`` in a worker; an exception becomes a failure."""
    if cache_dir:
        os.environ[CACHE_ENV] = cache_dir  # the parent's cache, also on Ray workers
    if data_root:
        os.environ[DATA_ENV] = data_root
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
    error_type: str | None = None  # the exception's class name, for a failed run
    retries: int = 0  # times it ran again after its worker or node was lost


def run_sweep(
    runs: Sequence[RunSpec],
    output: Path,
    executor: Executor,
    on_retry: Callable[[RunSpec, str], None] | None = None,
) -> Iterator[Outcome]:
    """Skipped runs first, then each run as it finishes, its files already written.

    A run whose worker or node is lost runs again (as the executor allows); ``on_retry``
    hears why, and its outcome counts the retries. Closing the iterator early (Ctrl-C)
    stops the executor's workers.
    """
    skipped, todo = [], []
    for spec in runs:
        path = spec.record_path(output)
        if path.is_file():
            _check_resumable(path, output)
            skipped.append(Outcome(spec, "skipped", path))
        else:
            todo.append(spec)
    yield from skipped
    cache_root = os.environ.get(CACHE_ENV)  # made absolute: a Ray worker's folder is not ours
    work = partial(
        attempt_run,
        cache_dir=str(Path(cache_root).resolve()) if cache_root else None,
        data_root=str(data_root()),
    )
    retries: Counter[Path] = Counter()  # by record path: one a run (checked_runs)

    def retried(spec: RunSpec, error: BaseException) -> None:
        retries[spec.record_path(output)] += 1
        if on_retry is not None:
            first_line = f"{type(error).__name__}: {error}".splitlines()[0]
            on_retry(spec, first_line[:300])

    with closing(executor.run(work, todo, lost_attempt, retried)) as attempts:
        for attempt in attempts:
            outcome = _settle(attempt, output)
            yield dataclasses.replace(outcome, retries=retries[attempt.spec.record_path(output)])


def _check_resumable(path: Path, output: Path) -> None:
    """A record skipped on resume stands for its run on the leaderboard, so it must be a
    valid record (the schema) of that very run (its own names lead to its path)."""
    record = read_record(path)
    if path_of_record(output, record) != path:
        raise RecordError(
            f"run record {path} holds the run of {shortened(record['strategy'])} on "
            f"{shortened(record['stream'])} (seed {record['seed']}), which belongs elsewhere; "
            "it was moved or renamed by hand: move it back or delete it"
        )


def _settle(attempt: Attempt, output: Path) -> Outcome:
    spec = attempt.spec
    if attempt.record is not None:
        try:
            path, _ = write_run(output, attempt.record)
        except Exception as error:  # e.g. a heat map of values that cannot be drawn
            attempt = Attempt(
                spec,
                attempt.seconds,
                error_type=type(error).__name__,
                error=f"the run finished but writing its files failed: {error}",
                traceback=traceback.format_exc(),
            )
        else:
            spec.discard_checkpoint()
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
    error = f"{attempt.error_type}: {attempt.error}"
    try:
        write_atomically(note, lambda tmp: tmp.write_text(text))
    except OSError as note_error:  # a full disk or a read-only folder: say so, go on
        error += f" (and its failure note could not be written: {note_error})"
    return Outcome(spec, "failed", note, attempt.seconds, error, attempt.error_type)

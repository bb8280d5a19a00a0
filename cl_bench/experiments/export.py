"""``clbench export``: finished run records into an experiment tracker, as finished runs.

A record is replayed through a logger plugin exactly as its run would have told it:
the start (identity, config, recipe, provenance), each experience's accuracy row and
times from the record's matrix, and the end with every metric, the record and its heat
map. Training curves are not in records, so exported runs have none. Each exported run
carries the record's SHA-256; a logger that can look it up (MLflow's does) skips what
it holds, so a second export adds nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cl_bench.experiments.tracking import end_of_run, open_loggers
from cl_bench.results.records import iter_records, path_of_record, record_text
from cl_bench.training.registry import Registry
from cl_bench.training.tracking import ExperienceDone, Loggers, RunStart


def export_records(
    registry: Registry, choice: str, runs: Path, warn: Callable[[str], None]
) -> Iterator[tuple[Path, str]]:
    """Each record under ``runs`` and what became of it: ``exported`` or ``held``."""
    for path, record in iter_records(runs):
        loggers = open_loggers(registry, [choice], warn)
        start = record_start(record)
        [(_, logger)] = loggers.loggers or [(None, None)]
        if logger is not None and logger.holds(start):
            yield path, "held"
            continue
        replay(loggers, start, record)
        yield path, "exported"


def record_start(record: dict[str, Any]) -> RunStart:
    identity = {key: record[key] for key in ("stream", "strategy", "backbone", "seed", "variant")}
    provenance = {
        key: record.get(key)
        for key in (
            "versions",
            "device",
            "backbone_weights",
            "strategy_provider",
            "started",
            "finished",
        )
    }
    provenance["data_sha256"] = (record.get("stream_info") or {}).get("data_sha256")
    return RunStart(
        identity=identity, config=record.get("config") or {}, recipe=record.get("recipe") or {},
        provenance=provenance,
        path=path_of_record(Path(), record).with_suffix("").as_posix(),
        group="export",
        record_sha256=hashlib.sha256(record_text(record).encode()).hexdigest(),
    )  # fmt: skip


def replay(loggers: Loggers, start: RunStart, record: dict[str, Any]) -> None:
    """The events the run would have sent, from its record."""
    metrics, resources = record["metrics"], record.get("resources") or {}
    train = resources.get("train_seconds") or []
    evaluation = resources.get("eval_seconds") or []
    with loggers.for_run(start):
        for index, row in enumerate(metrics["accuracy_matrix"]):
            loggers.experience(ExperienceDone(
                index=index, accuracy=[a or 0.0 for a in row[: index + 1]],
                average=metrics["accuracy_curve"][index],
                train_seconds=train[index] if index < len(train) else 0.0,
                eval_seconds=evaluation[index] if index < len(evaluation) else 0.0,
            ))  # fmt: skip
        end_of_run(loggers, record)

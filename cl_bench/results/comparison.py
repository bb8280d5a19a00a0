"""Whether a rerun gives a record's numbers again, and what differs around it.

A verdict is ``identical`` when every metric and every entry of the accuracy
(``correct``) and compatibility matrices is equal, ``close`` when not, but every metric
moved by less than its tolerance, and ``differs`` otherwise. The tolerance of a metric
is the standard error of its row's mean over seeds (sample std / sqrt(n), the
uncertainty the leaderboard already shows for that row), and never less than the
smallest step the metric can take (one test image for accuracies, one pair of models
for AC). docs/reproducing.md says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cl_bench.results.records import FAILURE_SUFFIX, VERSIONED_PACKAGES, path_of_record, read_record
from cl_bench.utils.errors import RecordError

Verdict = Literal["identical", "close", "differs"]

# The accuracy figures a verdict covers, then AC and AM of every compatibility score
PERCENT_METRICS = ("last_accuracy", "average_incremental_accuracy", "forgetting_max",
                   "forgetting_initial", "bwt")  # fmt: skip


@dataclass(frozen=True)
class Moved:
    """One metric that is not equal: its values, the change and the tolerance."""

    metric: str
    recorded: float | None
    rerun: float | None
    tolerance: float

    @property
    def change(self) -> float:
        if self.recorded is None or self.rerun is None:
            return math.inf
        return self.rerun - self.recorded

    @property
    def within(self) -> bool:
        return abs(self.change) <= self.tolerance

    def __str__(self) -> str:
        def text(value: float | None) -> str:
            return "none" if value is None else f"{value:.4g}"

        values = f"{self.metric} {text(self.recorded)} -> {text(self.rerun)}"
        if math.isinf(self.change):
            return values
        return f"{values} ({self.change:+.3g}, tolerance {self.tolerance:.3g})"


@dataclass(frozen=True)
class Comparison:
    verdict: Verdict
    moved: tuple[Moved, ...] = ()
    matrix_entries_changed: int = 0
    environment: tuple[str, ...] = ()  # "torch 2.14.1 -> 2.15.0", ...
    config: tuple[str, ...] = ()  # settings that differ

    def summary(self) -> str:
        """One line: the verdict, and what moved."""
        if self.verdict == "identical":
            return "identical"
        moved = "; ".join(str(m) for m in self.moved) or "metrics equal"
        return f"{self.verdict}: {moved}; {self.matrix_entries_changed} matrix entries changed"


def metric_values(record: Mapping[str, Any]) -> dict[str, float | None]:
    """The summary figures a verdict covers, by name (compatibility as ``search_top1.ac``)."""
    metrics = record.get("metrics", {})
    values: dict[str, float | None] = {name: metrics.get(name) for name in PERCENT_METRICS}
    for score, summary in sorted(metrics.get("compatibility", {}).items()):
        values[f"{score}.ac"] = summary.get("ac")
        values[f"{score}.am"] = summary.get("am")
    return values


def tolerances(record: Mapping[str, Any], row: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each metric's tolerance: the standard error of the row's mean over its seeds
    (``row`` holds every record of the row, ``record`` included), at least one step."""
    test_images = sum(record.get("metrics", {}).get("test_counts", [])) or 1
    steps = len(record.get("metrics", {}).get("accuracy_curve", [])) or 1
    pairs = max(1, steps * (steps - 1) // 2)
    result = {}
    for name in metric_values(record):
        floor = 1.0 / pairs if name.endswith(".ac") else 100.0 / test_images
        values = [v for r in row if (v := metric_values(r).get(name)) is not None]
        spread = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0
        result[name] = max(floor, spread if math.isfinite(spread) else 0.0)
    return result


def compare(
    recorded: Mapping[str, Any], rerun: Mapping[str, Any], row: Sequence[Mapping[str, Any]] = ()
) -> Comparison:
    """The verdict on ``rerun`` against ``recorded`` (``row``: the records of its row)."""
    limits = tolerances(recorded, row or [recorded])
    before, after = metric_values(recorded), metric_values(rerun)
    moved = tuple(
        Moved(name, before.get(name), after.get(name), limits.get(name, 0.0))
        for name in sorted(set(before) | set(after))
        if not _equal(before.get(name), after.get(name))
    )
    changed = _matrix_changes(recorded, rerun)
    if not moved and not changed:
        verdict: Verdict = "identical"
    elif all(m.within for m in moved):
        verdict = "close"
    else:
        verdict = "differs"
    return Comparison(
        verdict, moved, changed, environment_differences(recorded, rerun),
        config_differences(recorded, rerun),
    )  # fmt: skip


def _equal(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _matrix_changes(recorded: Mapping[str, Any], rerun: Mapping[str, Any]) -> int:
    """Entries of the correct-prediction and compatibility matrices that are not equal
    (a matrix of another shape counts every entry of the larger one)."""
    pairs = [(recorded["metrics"].get("correct"), rerun["metrics"].get("correct"))]
    before = recorded["metrics"].get("compatibility", {})
    after = rerun["metrics"].get("compatibility", {})
    for score in sorted(set(before) | set(after)):
        pairs.append((before.get(score, {}).get("matrix"), after.get(score, {}).get("matrix")))
    return sum(_entries_changed(a or [], b or []) for a, b in pairs)


def _entries_changed(a: Sequence[Sequence[Any]], b: Sequence[Sequence[Any]]) -> int:
    flat_a = [v for row in a for v in row]
    flat_b = [v for row in b for v in row]
    if [len(r) for r in a] != [len(r) for r in b]:
        return max(len(flat_a), len(flat_b))
    return sum(not _equal(x, y) for x, y in zip(flat_a, flat_b, strict=True))


def environment_differences(
    recorded: Mapping[str, Any], rerun: Mapping[str, Any]
) -> tuple[str, ...]:
    """What differs around the two runs: package versions, clbench commit, strategy
    provider version, CPU model, cores, OS, GPU, torch threads and device."""
    facts = []
    for name, get in _ENVIRONMENT.items():
        a, b = get(recorded), get(rerun)
        if a != b:
            facts.append(f"{name}: {_text(a)} -> {_text(b)}")
    return tuple(facts)


def config_differences(recorded: Mapping[str, Any], rerun: Mapping[str, Any]) -> tuple[str, ...]:
    """Settings that differ although the rerun was asked for the record's run (a default
    changed in the code, or official settings that changed)."""
    a, b = recorded.get("config", {}), rerun.get("config", {})
    return tuple(
        f"{key}: {_text(a.get(key))} -> {_text(b.get(key))}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    )


def _text(value: Any) -> str:
    return "not recorded" if value is None else str(value)


def _version(name: str) -> Any:
    return lambda record: record.get("versions", {}).get(name)


def _machine(name: str) -> Any:
    return lambda record: record.get("machine", {}).get(name)


_ENVIRONMENT = {
    "clbench commit": _version("clbench_commit"),
    **{name: _version(name) for name in ("python", *VERSIONED_PACKAGES) if name != "clbench"},
    "strategy provider version": lambda record: record.get("strategy_provider_version"),
    "CPU": _machine("cpu"),
    "cores": _machine("cores"),
    "platform": _machine("platform"),
    "GPU": _machine("gpu"),
    "torch threads": lambda record: record.get("resources", {}).get("torch_threads"),
    "device": lambda record: record.get("device"),
}


def row_records(path: Path, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every readable record of ``record``'s leaderboard row in its folder (the other
    seeds of the same stream, strategy, backbone and variant), ``record`` included."""
    row = []
    for sibling in sorted(path.parent.glob("seed*.json")):
        if sibling.name.endswith(FAILURE_SUFFIX):
            continue
        try:
            other = read_record(sibling)
        except RecordError:
            continue
        if all(other.get(key) == record.get(key) for key in _ROW):
            row.append(other)
    return row or [dict(record)]


_ROW = ("stream", "strategy", "backbone", "variant")
# The committed records of the checkout clbench runs from (absent in an installed copy).
COMMITTED_RUNS = Path(__file__).resolve().parents[2] / "leaderboards" / "runs"


def committed_counterpart(record: Mapping[str, Any]) -> Path | None:
    """The committed record of the same run in the clbench checkout that runs (its
    ``leaderboards/runs``), if there is one: what a newcomer's run should reproduce."""
    path = path_of_record(COMMITTED_RUNS, record)
    return path if path.is_file() else None

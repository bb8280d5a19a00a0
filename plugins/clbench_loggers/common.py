"""What the three trackers record alike: the names of a run's values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cl_bench import ExperienceDone, RunStart


def experience_values(done: ExperienceDone) -> dict[str, float]:
    """An experience's figures as named scalars, stepped by the experience's index."""
    values = {"accuracy/seen": done.average, "seconds/train": done.train_seconds,
              "seconds/eval": done.eval_seconds}  # fmt: skip
    values |= {f"accuracy/experience_{j}": a for j, a in enumerate(done.accuracy)}
    for score, summary in (done.compatibility or {}).items():
        values |= {f"compatibility/{score}/{key}": value for key, value in _numbers(summary)}
    return values


def tags(run: RunStart) -> dict[str, str]:
    """Strategy, stream, backbone, seed and variant, for filtering runs in the tracker."""
    named = {key: str(run.identity[key]) for key in ("strategy", "stream", "backbone", "seed")}
    named["variant"] = run.identity.get("variant") or "default"
    if run.group:
        named["sweep"] = run.group
    return named


def flat(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested settings as ``a.b`` keys (trackers take flat parameters)."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _numbers(values: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    for key, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield key, float(value)

"""``clbench verify``'s work: rerun records exactly as they describe their runs, in fresh
worker processes into a temporary folder, and compare what comes out.

Everything a record names is checked before any run starts (its format, the plugin of
its strategy, its stream, backbone and device); the data and the weights are checked
by the run itself, before it trains (:class:`RunSpec`'s expected checksums). A record
that cannot be rerun as it describes itself is never rerun some other way.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cl_bench.experiments.executors import Executor
from cl_bench.experiments.names import resolve_backbone
from cl_bench.experiments.runs import RunSpec, resolve_device
from cl_bench.experiments.sweep import Outcome, run_sweep
from cl_bench.results.comparison import Comparison, compare, row_records
from cl_bench.results.records import FAILURE_SUFFIX, read_record
from cl_bench.training.registry import Registry
from cl_bench.utils.errors import (
    ClbenchError,
    ConfigError,
    ProvenanceMismatchError,
    RecordError,
    shortened,
)
from cl_bench.utils.threads import DEFAULT_THREADS

Status = Literal["identical", "close", "differs", "cannot rerun"]


class NotRerunnableError(ClbenchError):
    """Records that cannot be rerun as they describe themselves (nothing was run)."""


@dataclass(frozen=True)
class Target:
    """A record to verify, and the run that should make it again."""

    path: Path
    record: dict[str, Any]
    spec: RunSpec


@dataclass(frozen=True)
class Verification:
    target: Target
    status: Status
    comparison: Comparison | None = None
    message: str = ""  # why a rerun failed or could not be made


def record_files(paths: Sequence[Path]) -> list[Path]:
    """The record files named, and those under the folders named (failure notes are not
    records), each once, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.json") if not p.name.endswith(FAILURE_SUFFIX))
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"no record file or folder {shortened(str(path))}")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise ConfigError(f"no run records under {', '.join(map(str, paths))}")
    return unique


def sample(paths: Sequence[Path], size: int | None, seed: int) -> list[Path]:
    """``size`` of ``paths`` drawn with ``seed`` (all of them without a size), in order."""
    if size is None or size >= len(paths):
        return list(paths)
    chosen = set(random.Random(seed).sample(range(len(paths)), size))
    return [path for index, path in enumerate(paths) if index in chosen]


def plan(paths: Sequence[Path], registry: Registry) -> list[Target]:
    """Each record with the run that makes it again; every record that cannot be rerun
    is named in one error, before anything runs."""
    targets, problems = [], []
    for path in paths:
        try:
            record = read_record(path)
            targets.append(Target(path, record, rerun_spec(record, registry)))
        except ClbenchError as error:
            problems.append(f"{path}: {error}")
    if problems:
        raise NotRerunnableError(
            f"{len(problems)} of {len(paths)} records cannot be rerun, so nothing was run:\n"
            + "\n".join(f"  {problem}" for problem in problems)
        )
    return targets


def rerun_spec(record: dict[str, Any], registry: Registry) -> RunSpec:
    """The run a record describes: its strategy (from an installed plugin), variant and
    overrides, seed, stream, backbone, limit, split, torch threads and device, and the
    data and weights it was made from."""
    info = record.get("stream_info") or {}
    weights = record.get("backbone_weights") or {}
    if "weights=" in record.get("variant", ""):
        raise RecordError(
            "it was made with a local checkpoint (--weights), whose path the record does not "
            "keep; rerun it with its row page's command and compare by hand"
        )
    if record["stream"] not in registry.streams:
        spec_file = info.get("spec_file")
        where = f" (made from spec file {shortened(spec_file)})" if spec_file else ""
        raise RecordError(
            f"its stream {shortened(record['stream'])}{where} is not installed here: an image "
            "folder or a spec file of a plugin that is not installed; install it, or rerun "
            "the record's command by hand"
        )
    if record["strategy"] not in registry.strategies:
        provider = record.get("strategy_provider") or "an unknown distribution"
        raise RecordError(
            f"its strategy {shortened(record['strategy'])} is not installed: install {provider} "
            f"{record.get('strategy_provider_version') or ''}".rstrip()
        )
    resolve_backbone(registry, record["backbone"])
    resources = record.get("resources") or {}
    threads = resources.get("torch_threads") or DEFAULT_THREADS
    device = str(record.get("device") or "cpu")
    resolve_device(device)  # a CUDA record on a machine without CUDA stops here
    return RunSpec(
        strategy=record["strategy"],
        stream=record["stream"],
        backbone=record["backbone"],
        seed=record["seed"],
        overrides={str(k): str(v) for k, v in (record.get("overrides") or {}).items()},
        limit_per_class=record.get("limit_per_class"),
        split=record.get("split", "test"),
        device=device,
        threads=int(threads),
        expected_data_sha256=info.get("data_sha256"),
        expected_weights_sha256=weights.get("sha256"),
        resume=False,  # a rerun from scratch, and nothing left behind
        save_checkpoints=False,
        tuning=record.get("tuning"),  # a tuned row's variant names its study
    )


def verify(
    targets: Sequence[Target],
    executor: Executor,
    track: Callable[..., Iterator[Any]] | None = None,
) -> Iterator[Verification]:
    """Rerun every target (each distinct run once) and yield its verification as it ends."""
    by_run: dict[Path, list[Target]] = {}
    for target in targets:
        by_run.setdefault(target.spec.record_path(Path()), []).append(target)
    specs = [group[0].spec for group in by_run.values()]
    track = track or (lambda items, **_: items)
    with (
        tempfile.TemporaryDirectory(prefix="clbench-verify-") as folder,
        closing(run_sweep(specs, Path(folder), executor)) as outcomes,
    ):
        for outcome in track(outcomes, total=len(specs), description="reruns"):
            for target in by_run[outcome.spec.record_path(Path())]:
                yield _verification(target, outcome)


def _verification(target: Target, outcome: Outcome) -> Verification:
    if outcome.status != "ran":
        mismatch = outcome.error_type == ProvenanceMismatchError.__name__
        status: Status = "cannot rerun" if mismatch else "differs"
        return Verification(target, status, message=f"the rerun failed: {outcome.error}")
    comparison = compare(target.record, read_record(outcome.path),
                         row_records(target.path, target.record))  # fmt: skip
    return Verification(target, comparison.verdict, comparison)


def exit_status(verifications: Sequence[Verification]) -> int:
    """2 if a record could not be rerun, else 1 if one differs, else 0."""
    statuses = {v.status for v in verifications}
    if "cannot rerun" in statuses:
        return 2
    return 1 if "differs" in statuses else 0

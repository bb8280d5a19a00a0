"""Run records: one JSON file per run, written atomically, the only input of leaderboards."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cl_bench.results.provenance import source_commit
from cl_bench.results.schema import RECORD_FORMAT, Record
from cl_bench.utils.errors import ConfigError, RecordError, shortened
from cl_bench.utils.files import sha256_file, write_atomically
from cl_bench.utils.names import file_name, path_inside
from cl_bench.utils.untrusted import UntrustedFileError, read_json

FAILURE_SUFFIX = ".failed.json"
VERSIONED_PACKAGES = ("clbench", "torch", "torchvision", "timm", "avalanche-lib", "numpy", "pluggy")


def variant_of(
    overrides: Mapping[str, Any],
    limit_per_class: int | None,
    split: str = "test",
    weights_sha256: str | None = None,
    tuned_by: str | None = None,
) -> str:
    """A readable label for a non-default run ("" for defaults): rows never mix variants.

    A local checkpoint (``--weights``) is named by its content, so that two checkpoints
    of one architecture never share a record, and a renamed copy of one still does.
    """
    parts = [f"{key}={overrides[key]}" for key in sorted(overrides)]
    if limit_per_class is not None:
        parts.append(f"limit-per-class={limit_per_class}")
    if split != "test":
        parts.append(f"split={split}")
    if weights_sha256 is not None:
        parts.append(f"weights={weights_sha256[:12]}")
    if tuned_by is not None:  # settings chosen by `clbench tune`: a row of its own
        parts.append(f"tuned={tuned_by}")
    return ",".join(parts)


@functools.cache
def checkpoint_sha256(path: Path) -> str:
    """A checkpoint's SHA-256, read once per process: a sweep names its runs by it
    before and after they run, and a file moved meanwhile must not break that."""
    return sha256_file(path.resolve())


def variant_suffix(variant: str) -> str:
    """``-<hash>`` naming a non-default variant in file names; empty for the default."""
    return f"-{hashlib.sha256(variant.encode()).hexdigest()[:8]}" if variant else ""


def record_path(
    root: Path, *, stream: str, strategy: str, backbone: str, seed: int, variant: str
) -> Path:
    """Where a run's record belongs: each name one component by :mod:`cl_bench.utils.names`'s
    one mapping, and the whole inside ``root``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {shortened(seed)}")
    if not isinstance(variant, str):
        raise ConfigError(f"variant must be a string, got {shortened(variant)}")
    folders = [file_name(stream, "stream"), file_name(strategy, "strategy"),
               file_name(backbone, "backbone")]  # fmt: skip
    return path_inside(root, *folders, f"seed{seed}{variant_suffix(variant)}.json")


def path_of_record(root: Path, record: Mapping[str, Any]) -> Path:
    """Where ``record`` belongs under ``root`` (:func:`record_path` of its own names)."""
    return record_path(
        root,
        stream=record["stream"],
        strategy=record["strategy"],
        backbone=record["backbone"],
        seed=record["seed"],
        variant=record["variant"],
    )


def failure_path(record: Path) -> Path:
    """Where a sweep notes that the run of ``record`` failed: beside it, never read as a record.

    ``seed1993.json`` -> ``seed1993.failed.json``. A later sweep retries the run; writing
    the record removes the note (:func:`write_record`).
    """
    return record.with_name(record.stem + FAILURE_SUFFIX)


def package_versions() -> dict[str, str | None]:
    """Versions of what a result depends on, and the clbench commit (None if unknown)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["clbench_commit"] = source_commit()
    return versions


def machine_description(gpu: str | None = None) -> dict[str, Any]:
    """What a record's numbers may depend on beyond the packages: the CPU model (its
    vector units decide how float sums round), the core count, the OS, and the GPU; and
    where a sweep placed the run: the physical GPU ids it was given
    (``CUDA_VISIBLE_DEVICES``, as Ray or the local pool set it) and its Ray node."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "gpu": gpu,
        "gpu_ids": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "ray_node": _ray_node(),
    }


def _ray_node() -> str | None:
    """The Ray node this process runs on, when it is a Ray worker (Ray is not imported)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


@functools.cache
def _cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux; the platform's word elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_text(record: Mapping[str, Any]) -> str:
    """The record as JSON. Non-finite numbers are written as ``NaN``/``Infinity``, which
    Python's json and pandas read back as the same values (strict JSON has no spelling
    for them, and a run that produced one must not be lost for it)."""
    return json.dumps(record, indent=2, sort_keys=True, allow_nan=True) + "\n"


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` atomically; a failure note left for the same run goes (it succeeded)."""
    text = record_text(record)
    write_atomically(path, lambda tmp: tmp.write_text(text))
    failure_path(path).unlink(missing_ok=True)


def save_elsewhere(record: Mapping[str, Any], intended: Path) -> Path | None:
    """Save a record that could not be written to ``intended`` in the temporary folder, so
    that a finished run survives a full disk or a folder that stopped being writable;
    None if that fails too."""
    folder = Path(tempfile.gettempdir()) / "clbench-unsaved"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    name = "-".join(str(record.get(key)) for key in ("stream", "strategy", "backbone", "seed"))
    path = path_inside(folder, f"{file_name(name)}-{stamp}.json")
    try:
        write_atomically(path, lambda tmp: tmp.write_text(record_text(record)))
    except OSError:
        return None
    return path


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = read_json(path, "run record")
    except UntrustedFileError as error:
        raise RecordError(f"{error}; delete it and rerun") from error
    if not isinstance(record, dict):
        raise RecordError(
            f"run record {path} holds a {type(record).__name__}, not a clbench record (a "
            "JSON object); delete it and rerun"
        )
    missing = [
        k
        for k in ("format", "stream", "strategy", "backbone", "seed", "metrics")
        if k not in record
    ]
    if missing or record.get("format") != RECORD_FORMAT:
        raise RecordError(
            f"run record {path} is not a clbench format-{RECORD_FORMAT} record "
            f"(missing {missing or 'nothing'}, format {shortened(record.get('format'))}); "
            "delete it and rerun"
        )
    try:
        Record.model_validate(record)
    except ValidationError as error:
        raise RecordError(
            f"run record {path}: {schema_problem(error)}; the file was not written "
            "by clbench or was changed after: delete it and rerun"
        ) from error
    return record


def schema_problem(error: ValidationError) -> str:
    """The first problem pydantic found, as "field: what is wrong (got value)"."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "the record"
    return f"{field}: {first['msg']} (got {shortened(first.get('input'))})"


def iter_records(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every record under ``root``, in a stable order (failure notes are not records)."""
    for path in sorted(root.rglob("*.json")):
        if not path.name.endswith(FAILURE_SUFFIX):
            yield path, read_record(path)

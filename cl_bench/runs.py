"""One run: what names it (:class:`RunSpec`), and the two steps every run goes through.

``clbench evaluate`` and every sweep worker call :func:`evaluate_run`, and the process
that owns the output folder calls :func:`write_run`, so a sweep writes the same
records, under the same paths, that single runs would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cl_bench.errors import ClbenchError
from cl_bench.evaluation import evaluate, stream_name
from cl_bench.heatmaps import write_compatibility_heatmap
from cl_bench.records import checkpoint_sha256, record_path, variant_of, write_record
from cl_bench.registry import Registry


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
        weights = checkpoint_sha256(self.weights.absolute()) if self.weights else None
        return variant_of(self.overrides, self.limit_per_class, self.split, weights)

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

    The heat map first: a record on disk means its run is complete, so it goes last,
    and a record that cannot be written takes its heat map with it. Returns the paths of
    the record and of the heat map.
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
    try:
        write_record(path, record)
    except BaseException:
        heatmap.unlink(missing_ok=True)
        raise
    return path, heatmap

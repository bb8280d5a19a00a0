"""Stream specifications: data files in ``streams/`` that say exactly what a stream contains.

A spec names its sources and classes, the resolution, the fixed per-class split and
the increments, and carries provenance and licences, so that a stream is reproducible
from the file alone. The class order is not part of it: it is drawn from the run seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cl_bench.errors import ConfigError


@dataclass(frozen=True)
class SourceEntry:
    kind: str
    classes: tuple[str, ...] | None
    licence: str
    provenance: str


@dataclass(frozen=True)
class StreamSpec:
    """A class-incremental stream: B{initial_classes} Inc{increment} over the sources' classes."""

    name: str
    description: str
    resolution: int
    increment: int
    sources: tuple[SourceEntry, ...]
    initial_classes: int = 0
    test_fraction: float = 0.25
    max_train_per_class: int = 80
    max_test_per_class: int = 20
    split_seed: int = 0
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        where = f"stream {self.name!r}" + (f" ({self.path})" if self.path else "")
        checks = {
            "resolution": self.resolution >= 8,
            "increment": self.increment >= 1,
            "initial_classes": self.initial_classes >= 0,
            "test_fraction": 0 < self.test_fraction < 1,
            "max_train_per_class": self.max_train_per_class >= 1,
            "max_test_per_class": self.max_test_per_class >= 1,
            "sources": len(self.sources) >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"{where}: invalid {key}: {getattr(self, key)!r}")

    @classmethod
    def from_yaml(cls, path: Path) -> StreamSpec:
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read stream spec {path}: {error}") from error
        if not isinstance(raw, dict):
            raise ConfigError(f"stream spec {path}: expected a mapping at the top level")
        return cls.from_dict(raw, path)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path | None = None) -> StreamSpec:
        where = f"stream spec {path or raw.get('name', '?')}"
        allowed = {f.name for f in fields(cls)} - {"path"}
        unknown = set(raw) - allowed
        if unknown:
            raise ConfigError(
                f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        try:
            sources = tuple(
                SourceEntry(
                    kind=entry["kind"],
                    classes=tuple(entry["classes"]) if entry.get("classes") else None,
                    licence=entry["licence"],
                    provenance=entry["provenance"],
                )
                for entry in raw.get("sources", ())
            )
            return cls(**{**raw, "sources": sources, "path": path})
        except (KeyError, TypeError) as error:
            raise ConfigError(f"{where}: missing or malformed field: {error}") from error

    def content(self) -> dict[str, Any]:
        """What determines the prepared images (not the increments), for cache keys."""
        return {
            "resolution": self.resolution,
            "sources": [[s.kind, list(s.classes or [])] for s in self.sources],
            "split": [self.test_fraction, self.max_train_per_class, self.max_test_per_class,
                      self.split_seed],
        }  # fmt: skip

"""Stream specifications: data files in ``streams/`` that say exactly what a stream contains.

A spec names its sources and classes, the resolution, the split (fixed per class, or
the train/test split a data set ships with) and the increments, and carries provenance,
licences, where to obtain the data and the published numbers that apply, so that a
stream is reproducible from the file alone. The class order is not part of it: it is
drawn from the run seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cl_bench.utils.config import require_types
from cl_bench.utils.errors import ConfigError, MissingDataError, shortened
from cl_bench.utils.names import check_name
from cl_bench.utils.untrusted import read_yaml

FITS = ("pad", "crop")
# The data set families that official codes ship per-data-set settings for: a stream of
# a family runs each strategy with that strategy's official settings for it.
STREAM_FAMILIES = (
    "cifar100", "imagenet-r", "imagenet-a", "cub", "omnibenchmark", "vtab", "objectnet",
)  # fmt: skip


@dataclass(frozen=True)
class SourceEntry:
    kind: str
    classes: tuple[str, ...] | None = None
    licence: str = ""
    provenance: str = ""
    path: str | None = None  # under the data root (or absolute), for data users download
    num_classes: int | None = None  # expected count: fewer found means incomplete data
    obtain: str = ""  # how to get the data, shown when it is missing

    def __post_init__(self) -> None:
        require_types(self, "stream spec source")


@dataclass(frozen=True)
class PublishedResult:
    """A published figure this stream reproduces the setting of (accuracies in %)."""

    strategy: str
    backbone: str
    average: float | None
    last: float | None
    source: str

    def __post_init__(self) -> None:
        require_types(self, "stream spec published result")


@dataclass(frozen=True)
class StreamSpec:
    """A class-incremental stream: B{initial_classes} Inc{increment} over the sources' classes."""

    name: str
    description: str
    resolution: int
    increment: int
    sources: tuple[SourceEntry, ...]
    initial_classes: int = 0
    test_fraction: float = 0.25  # for sources without a train/test split of their own
    max_train_per_class: int | None = None  # None: every image
    max_test_per_class: int | None = None
    split_seed: int = 0
    fit: str = "pad"  # pad to a square, or resize the short side and centre-crop (photos)
    crop_pct: float = 0.875  # crop: the short side is resized to resolution / crop_pct
    published: tuple[PublishedResult, ...] = ()
    family: str | None = None  # one of STREAM_FAMILIES; None: no official settings apply
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        where = f"stream {shortened(self.name)}" + (f" ({self.path})" if self.path else "")
        require_types(self, where)
        check_name(self.name, f"{where}: name")
        checks = {
            "resolution": (self.resolution >= 8, "at least 8 (pixels)"),
            "increment": (self.increment >= 1, "at least 1"),
            "initial_classes": (self.initial_classes >= 0, "0 or more"),
            "test_fraction": (0 < self.test_fraction < 1, "between 0 and 1"),
            "max_train_per_class": (
                self.max_train_per_class is None or self.max_train_per_class >= 1,
                "at least 1, or null for all",
            ),
            "max_test_per_class": (
                self.max_test_per_class is None or self.max_test_per_class >= 1,
                "at least 1, or null for all",
            ),
            "sources": (len(self.sources) >= 1, "at least one source"),
            "fit": (self.fit in FITS, f"one of {', '.join(FITS)}"),
            "crop_pct": (0 < self.crop_pct <= 1, "in (0, 1]"),
            "family": (
                self.family is None or self.family in STREAM_FAMILIES,
                f"one of {', '.join(STREAM_FAMILIES)}, or absent",
            ),
        }
        for key, (ok, accepted) in checks.items():
            if not ok:
                raise ConfigError(
                    f"{where}: invalid {key}: {shortened(getattr(self, key))}; it must be "
                    f"{accepted}"
                )

    @classmethod
    def from_yaml(cls, path: Path) -> StreamSpec:
        raw = read_yaml(path, "stream spec")
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
        for key in ("sources", "published"):
            entries = raw.get(key, [])
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise ConfigError(
                    f"{where}: {key} must be a list of mappings, got {shortened(entries)}"
                )
        for entry in raw.get("sources", []):
            if not isinstance(entry.get("classes") or [], list):
                raise ConfigError(f"{where}: a source's classes must be a list of names")
        try:
            sources = tuple(
                SourceEntry(**{**entry, "classes": tuple(entry.get("classes") or ()) or None})
                for entry in raw.get("sources", ())
            )
            published = tuple(PublishedResult(**entry) for entry in raw.get("published", ()))
            return cls(**{**raw, "sources": sources, "published": published, "path": path})
        except (KeyError, TypeError) as error:
            raise ConfigError(f"{where}: missing or malformed field: {error}") from error
        except ConfigError as error:  # a source's or result's field: say which file
            if path is None or str(path) in str(error):
                raise
            raise ConfigError(f"{where}: {error}") from error

    @classmethod
    def for_folder(cls, root: Path, *, increment: int, initial_classes: int) -> StreamSpec:
        """A user's own image folder (``train/`` and ``test/``, one folder per class)."""
        if not root.is_dir():
            raise MissingDataError(f"no folder {root}: give an image folder with train/ and test/")
        train = root / "train"
        classes = sum(entry.is_dir() for entry in train.iterdir()) if train.is_dir() else None
        first = initial_classes or increment
        if classes is not None and first > classes:  # found before any image is decoded
            raise ConfigError(
                f"image folder {root} has {classes} classes in train/, fewer than the {first} "
                f"of the first experience; give --increment (and --initial-classes) of at "
                f"most {classes}, e.g. --increment {max(1, classes // 2)}"
            )
        return cls(  # named like the literature's streams: the split is part of the name
            name=f"{root.resolve().name}-b{initial_classes}inc{increment}",
            description=f"image folder {root.resolve()}",
            resolution=224,
            increment=increment,
            initial_classes=initial_classes,
            fit="crop",
            sources=(
                SourceEntry(
                    "image-folder",
                    None,
                    "the user's",
                    str(root.resolve()),
                    path=str(root.resolve()),
                ),
            ),
        )

    def fitted_to(self, input_size: int | None, crop_pct: float | None) -> StreamSpec:
        """Photos are cropped as the backbone's pretrained config says (timm's evaluation
        transform: its input size and crop fraction); other streams stay as specified."""
        if self.fit != "crop" or input_size is None:
            return self
        return replace(self, resolution=input_size, crop_pct=crop_pct or self.crop_pct)

    def content(self) -> dict[str, Any]:
        """What determines the prepared images (not the increments), for cache keys."""
        content: dict[str, Any] = {
            "resolution": self.resolution,
            "sources": [[s.kind, list(s.classes or [])] for s in self.sources],
            "split": [self.test_fraction, self.max_train_per_class, self.max_test_per_class,
                      self.split_seed],
        }  # fmt: skip
        if self.fit != "pad":
            content["fit"] = [self.fit, self.crop_pct]
        paths = [s.path for s in self.sources if s.path]
        if paths:
            content["paths"] = paths
        return content

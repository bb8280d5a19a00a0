"""What every source shares: class pools, the data context, the identity of installed
files, and the transforms that fit an image to a stream's resolution.

Each source lists its classes as pools of references (cheap: file paths or array
indices) and loads only the images a stream selects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cl_bench.utils.errors import MissingDataError, shortened

# Some openclipart files are hundreds of megapixels; they are not worth decoding.
MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class ClassPool:
    """All candidate images of one class, in a fixed order.

    A source with a train/test split of its own gives ``test_refs``; ``refs`` are then
    its training images, and the stream keeps that split.
    """

    name: str
    refs: Sequence[Any]
    load: Callable[[Any], Image.Image]
    test_refs: Sequence[Any] | None = None


@dataclass(frozen=True)
class DataContext:
    """Where user-provided data lives, and whether a missing data set may be downloaded."""

    data_root: Path
    download: bool = False


@dataclass(frozen=True)
class SourceData:
    """A source's identity (cheap: file sizes and times) and, on demand, its class pools.

    Decoding is deferred so that a stream whose prepared images are cached never reads
    the raw files.
    """

    fingerprint: str  # changes when the installed data changes
    load_pools: Callable[[], list[ClassPool]]


def to_rgb_square(image: Image.Image, size: int) -> np.ndarray:
    """Flatten transparency on white, pad to a square with white, resize: uint8 H x W x 3."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, image)
    image = image.convert("RGB")
    width, height = image.size
    side = max(width, height)
    if width != height:
        fill = (255, 255, 255) if image.getpixel((0, 0)) == (255, 255, 255) else (0, 0, 0)
        square = Image.new("RGB", (side, side), fill)
        square.paste(image, ((side - width) // 2, (side - height) // 2))
        image = square
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0))


def to_rgb_crop(image: Image.Image, size: int, crop_pct: float) -> np.ndarray:
    """timm's evaluation transform for photos: resize the short side to ``size / crop_pct``
    (bicubic), then take the central ``size`` x ``size`` crop: uint8 H x W x 3."""
    image = image.convert("RGB")
    width, height = image.size
    short = max(size, round(size / crop_pct))
    scale = short / min(width, height)
    resized = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(resized, Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)))


class OversizedImage(Exception):
    """Raised for images too large to decode; the stream builder skips them."""


def pools_from_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    chosen: Sequence[str],
    prefix: str,
) -> list[ClassPool]:
    def load(index: int) -> Image.Image:
        return Image.fromarray(images[index])  # H x W: grey, H x W x 3: RGB

    return [
        ClassPool(f"{prefix} {name}", np.flatnonzero(labels == names.index(name)).tolist(), load)
        for name in chosen
    ]


def select_classes(names: Sequence[str], classes: Sequence[str] | None, source: str) -> list[str]:
    if classes is None:
        return list(names)
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise MissingDataError(
            f"source {shortened(source)} has no classes {shortened(unknown)}; "
            f"it has {shortened(list(names))}"
        )
    return list(classes)


def require_files(paths: Sequence[Path], what: str, command: str) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise MissingDataError(
            f"{what} not found (expected {', '.join(missing)}); install it with: {command}"
        )


def fingerprint_files(paths: Sequence[Path]) -> str:
    """Cheap identity of installed files (path, size, mtime): changes when a package is updated."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]

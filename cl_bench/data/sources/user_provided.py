"""Sources for data sets that users obtain themselves, in the formats they already have:
CIFAR-100 as torchvision's files, and image folders (``train/`` and ``test/``, one
folder per class) as the pretrained-model continual-learning papers distribute
ImageNet-R, ImageNet-A, CUB-200, OmniBenchmark, VTAB and ObjectNet.

Both keep the data set's own train/test split. Nothing is downloaded unless asked
(``--download``); missing or incomplete data is an error that names what was expected
where and how to obtain it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cl_bench.data.sources.base import (
    ClassPool,
    DataContext,
    SourceData,
    fingerprint_files,
    select_classes,
)
from cl_bench.data.spec import SourceEntry
from cl_bench.utils.errors import MissingDataError, shortened

CIFAR100_FOLDER = "cifar-100-python"  # what torchvision's CIFAR100(root) reads and writes
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def cifar100(entry: SourceEntry, context: DataContext) -> SourceData:
    """CIFAR-100's python files (``train``, ``test``, ``meta``) under the data root."""
    root = _resolve(entry, context, default=".")
    folder = root / CIFAR100_FOLDER
    files = [folder / name for name in ("train", "test", "meta")]
    if not all(f.is_file() for f in files) and context.download:
        _download_cifar100(root)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise MissingDataError(
            f"CIFAR-100 not found: expected torchvision's files {', '.join(missing)}. "
            "Fetch it with `clbench prepare --stream <this stream, e.g. cifar100-b0inc10> "
            f"--download` ({CIFAR100_URL}, 161 MB, needs network), or "
            f"extract that archive into {root}; --data-root or $CLBENCH_DATA_ROOT sets the "
            "folder that holds cifar-100-python/"
        )

    def load_pools() -> list[ClassPool]:
        names = tuple(_unpickle(files[2])["fine_label_names"])
        chosen = select_classes(names, entry.classes, "cifar100")
        _check_count(entry, len(chosen), folder)
        train, test = (_unpickle(f) for f in files[:2])
        images = np.concatenate([_images(train), _images(test)])
        labels = np.asarray(train["fine_labels"] + test["fine_labels"])
        is_test = np.arange(len(labels)) >= len(train["fine_labels"])

        def load(index: int) -> Image.Image:
            return Image.fromarray(images[index])

        pools = []
        for name in chosen:
            of_class = labels == names.index(name)
            train_refs = np.flatnonzero(of_class & ~is_test).tolist()
            test_refs = np.flatnonzero(of_class & is_test).tolist()
            pools.append(ClassPool(name, train_refs, load, test_refs=test_refs))
        return pools

    return SourceData(fingerprint_files(files), load_pools)


def image_folder(entry: SourceEntry, context: DataContext) -> SourceData:
    """``<path>/train/<class>/*`` and ``<path>/test/<class>/*``; classes in sorted folder
    order (torchvision's ImageFolder, which the papers' code uses)."""
    root = _resolve(entry, context, default=None)
    how = f" Obtain it: {entry.obtain}" if entry.obtain else ""
    if not Path(entry.path).is_absolute():
        how += " (--data-root or $CLBENCH_DATA_ROOT sets the folder that holds it)"
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise MissingDataError(
                f"image folder {root / split} not found: expected {root} to hold train/ and "
                f"test/, one sub-folder of images per class.{how}"
            )
    train, test = (_class_files(root / split) for split in ("train", "test"))
    if set(train) != set(test):
        only_train, only_test = sorted(set(train) - set(test)), sorted(set(test) - set(train))
        raise MissingDataError(
            f"{root}: train/ and test/ must have the same class folders; only in train/: "
            f"{only_train[:10]}, only in test/: {only_test[:10]}. The data set is incomplete.{how}"
        )
    names = tuple(sorted(train))
    chosen = select_classes(names, entry.classes, str(root))
    _check_count(entry, len(chosen), root / "train")
    empty = [f"{split}/{name}" for name in chosen for split, files in
             (("train", train[name]), ("test", test[name])) if not files]  # fmt: skip
    if empty:
        raise MissingDataError(
            f"{root}: no images in {empty[:10]}; the data set is incomplete.{how}"
        )
    pools = [ClassPool(name, train[name], _load_image, test_refs=test[name]) for name in chosen]
    every_file = [f for pool in pools for f in (*pool.refs, *pool.test_refs)]
    return SourceData(fingerprint_files(every_file), lambda: pools)


def _resolve(entry: SourceEntry, context: DataContext, default: str | None) -> Path:
    if entry.path is None and default is None:
        raise MissingDataError(f"source {shortened(entry.kind)} needs a path")
    path = Path(entry.path or default)
    return path if path.is_absolute() else context.data_root / path


def _class_files(folder: Path) -> dict[str, list[Path]]:
    return {
        sub.name: sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        for sub in sorted(folder.iterdir())
        if sub.is_dir()
    }


def _check_count(entry: SourceEntry, found: int, where: Path) -> None:
    if entry.num_classes is not None and found != entry.num_classes:
        how = f" Obtain it: {entry.obtain}" if entry.obtain else ""
        raise MissingDataError(
            f"expected {entry.num_classes} classes in {where}, found {found}: the data set "
            f"is incomplete or not the one this stream expects.{how}"
        )


def _load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise MissingDataError(
            f"cannot read image {path} ({error}); the file is corrupt: re-extract the data set"
        ) from error


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise MissingDataError(
            f"cannot read {path} ({error}); the file is corrupt: delete {path.parent} and "
            "extract or download CIFAR-100 again"
        ) from error


def _images(part: dict) -> np.ndarray:
    """CIFAR rows (3,072 values: the red, green, blue planes) -> N x 32 x 32 x 3 uint8."""
    return np.asarray(part["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _download_cifar100(root: Path) -> None:
    from torchvision.datasets import CIFAR100

    try:
        CIFAR100(root=str(root), train=True, download=True)
    except Exception as error:  # no network, proxy, checksum: say so and how to do it by hand
        raise MissingDataError(
            f"downloading CIFAR-100 from {CIFAR100_URL} into {root} failed ({error}); "
            "without network access, copy the extracted cifar-100-python/ folder there"
        ) from error

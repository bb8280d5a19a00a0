"""The prepared-image cache: a spec's images loaded from its sources, split into train
and test per class, fitted to the stream's resolution, and cached on disk by content
(one preparation serves every split of the same data into experiences)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from cl_bench.data.sources import SOURCES
from cl_bench.data.sources.base import (
    ClassPool,
    DataContext,
    OversizedImage,
    SourceData,
    to_rgb_crop,
    to_rgb_square,
)
from cl_bench.data.spec import StreamSpec
from cl_bench.utils.errors import ConfigError, shortened
from cl_bench.utils.files import cache_dir, data_root, write_atomically
from cl_bench.utils.names import file_name, path_inside
from cl_bench.utils.tensors import tensor_digest

PREPARED_FORMAT = 3  # 3: entries carry a checksum
BLANK_STD = 3.0  # pixel standard deviation (of 255) below which an image is blank


@dataclass(frozen=True)
class PreparedData:
    """Every selected image of a stream, before class ordering: uint8 N x 3 x R x R."""

    images: torch.Tensor
    labels: torch.Tensor  # index into class_names (spec order)
    is_test: torch.Tensor  # bool
    class_names: tuple[str, ...]


def split_sizes(available: int, spec: StreamSpec) -> tuple[int, int]:
    """(train, test) counts of a class with ``available`` images, under the spec's fixed rule."""
    n_test = max(1, math.ceil(spec.test_fraction * available))
    n_test = min(n_test, spec.max_test_per_class or n_test)
    n_train = available - n_test
    return min(n_train, spec.max_train_per_class or n_train), n_test


def prepare(
    spec: StreamSpec,
    *,
    use_cache: bool = True,
    track: Callable[..., Iterator[Any]] | None = None,
    context: DataContext | None = None,
) -> PreparedData:
    """Load, split and resize the spec's images; cached on disk by content."""
    context = context or DataContext(data_root())
    sources = [SOURCES[_source_kind(spec, s.kind)](s, context) for s in spec.sources]
    key = hashlib.sha256(
        json.dumps([PREPARED_FORMAT, spec.content(), [s.fingerprint for s in sources]]).encode()
    ).hexdigest()[:20]
    # Named by content, not by the split into experiences: every split of one data set
    # (cifar100-b0inc10 and -b0inc5, a folder at any --increment) shares its images.
    label = file_name(re.sub(r"-b\d+inc\d+$", "", spec.name), "stream name")
    path = path_inside(cache_dir() / "streams", f"{label}-{key}.pt")
    if not use_cache:
        return _load_and_split(spec, sources, track)
    if path.is_file():  # files appear whole (renamed into place): no lock to read one
        with contextlib.suppress(Exception):
            return _read_prepared(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Sweep workers that start on one stream together: one prepares it, the others wait
    # for the lock and then load what it wrote.
    with FileLock(f"{path}.lock"):
        if path.is_file():
            try:
                return _read_prepared(path)
            except Exception as error:  # truncated, corrupt or foreign file: rebuild it
                warnings.warn(
                    f"prepared stream cache {path} is unreadable ({error}); rebuilding it",
                    stacklevel=2,
                )
        data = _load_and_split(spec, sources, track)
        payload = {"data": data.__dict__, "sha256": _digest(data)}
        write_atomically(path, lambda tmp: torch.save(payload, tmp))
    return data


def _digest(data: PreparedData) -> str:
    return "".join(tensor_digest(t) for t in (data.images, data.labels, data.is_test))


def data_sha256(data: PreparedData) -> str:
    """One SHA-256 of a stream's prepared images, labels and train/test split: the same
    on every machine that prepares the same data, whatever cache it came from."""
    return hashlib.sha256(_digest(data).encode()).hexdigest()


def _read_prepared(path: Path) -> PreparedData:
    """A prepared stream whose checksum matches, or an error saying why not."""
    payload = torch.load(path, weights_only=True)
    data = PreparedData(**payload["data"])
    if _digest(data) != payload["sha256"]:
        raise ValueError("checksum mismatch")
    return data


def _load_and_split(
    spec: StreamSpec, sources: list[SourceData], track: Callable[..., Iterator[Any]] | None
) -> PreparedData:
    pools = [pool for source in sources for pool in source.load_pools()]
    names = [pool.name for pool in pools]
    if len(set(names)) != len(names):
        raise ConfigError(f"stream {shortened(spec.name)}: class names repeat across sources")
    track = track or (lambda items, **_: iter(items))
    images, labels, is_test = [], [], []
    for label, pool in enumerate(track(pools, total=len(pools), description="preparing images")):
        train, test = (
            _given_split(pool, spec) if pool.test_refs is not None else _select_split(pool, spec)
        )
        for flag, chosen in ((False, train), (True, test)):
            images += chosen
            labels += [label] * len(chosen)
            is_test += [flag] * len(chosen)
    return PreparedData(
        images=torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
        labels=torch.tensor(labels, dtype=torch.int64),
        is_test=torch.tensor(is_test, dtype=torch.bool),
        class_names=tuple(names),
    )


def _source_kind(spec: StreamSpec, kind: str) -> str:
    if kind not in SOURCES:
        raise ConfigError(
            f"stream {shortened(spec.name)}: unknown source kind {shortened(kind)}; "
            f"known: {sorted(SOURCES)}"
        )
    return kind


def _fit(image: Any, spec: StreamSpec) -> np.ndarray:
    if spec.fit == "crop":
        return to_rgb_crop(image, spec.resolution, spec.crop_pct)
    return to_rgb_square(image, spec.resolution)


def _given_split(pool: ClassPool, spec: StreamSpec) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The data set's own split, every image (up to the spec's caps, in file order), as
    the papers use it: nothing is filtered."""
    train_refs = pool.refs[: spec.max_train_per_class]
    test_refs = pool.test_refs[: spec.max_test_per_class]
    return (
        [_fit(pool.load(ref), spec) for ref in train_refs],
        [_fit(pool.load(ref), spec) for ref in test_refs],
    )


def _select_split(pool: ClassPool, spec: StreamSpec) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A fixed split: a seeded permutation of the pool, test images first, then train.

    Blank images (some clip art renders as plain white) and exact duplicates after
    resizing are skipped, so that no test image is also a training image.
    """
    n_train, n_test = split_sizes(len(pool.refs), spec)
    order = np.random.RandomState(spec.split_seed).permutation(len(pool.refs))
    chosen: list[np.ndarray] = []
    seen: set[bytes] = set()
    for index in order:
        if len(chosen) == n_test + n_train:
            break
        try:
            image = _fit(pool.load(pool.refs[index]), spec)
        except OversizedImage:
            continue
        digest = hashlib.sha1(image.tobytes()).digest()
        if image.std() < BLANK_STD or digest in seen:
            continue
        seen.add(digest)
        chosen.append(image)
    return chosen[n_test:], chosen[:n_test]

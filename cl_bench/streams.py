"""Builds a stream from its spec: prepared images (cached), a seeded class order, and an
Avalanche class-incremental benchmark that the runner and any Avalanche user consume."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from cl_bench.datasources import (
    ClassPool,
    DataContext,
    OversizedImage,
    SourceData,
    to_rgb_crop,
    to_rgb_square,
)
from cl_bench.errors import ConfigError
from cl_bench.experience import Experience, StreamInfo
from cl_bench.paths import cache_dir, data_root, write_atomically
from cl_bench.sources import SOURCES
from cl_bench.stream_spec import StreamSpec

PREPARED_FORMAT = 2
BLANK_STD = 3.0  # pixel standard deviation (of 255) below which an image is blank
SPLITS = ("test", "validation")
VALIDATION_FRACTION = 0.2  # of each class's training images, held out by --split validation
VALIDATION_SEED = 0  # the same held-out images for every class order


@dataclass(frozen=True)
class PreparedData:
    """Every selected image of a stream, before class ordering: uint8 N x 3 x R x R."""

    images: torch.Tensor
    labels: torch.Tensor  # index into class_names (spec order)
    is_test: torch.Tensor  # bool
    class_names: tuple[str, ...]


def class_order(num_classes: int, seed: int) -> list[int]:
    """The class order PyCIL and PILOT use: ``np.random.seed(seed); permutation(n)``."""
    return np.random.RandomState(seed).permutation(num_classes).tolist()


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
    label = re.sub(r"-b\d+inc\d+$", "", spec.name)
    path = cache_dir() / "streams" / f"{label}-{key}.pt"
    if not use_cache:
        return _load_and_split(spec, sources, track)
    if path.is_file():  # files appear whole (renamed into place): no lock to read one
        with contextlib.suppress(Exception):
            return PreparedData(**torch.load(path, weights_only=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Sweep workers that start on one stream together: one prepares it, the others wait
    # for the lock and then load what it wrote.
    with FileLock(f"{path}.lock"):
        if path.is_file():
            try:
                return PreparedData(**torch.load(path, weights_only=True))
            except Exception as error:  # truncated or foreign file: rebuild it
                warnings.warn(
                    f"prepared stream cache {path} is unreadable ({error}); rebuilding it",
                    stacklevel=2,
                )
        data = _load_and_split(spec, sources, track)
        write_atomically(path, lambda tmp: torch.save(data.__dict__, tmp))
    return data


def _load_and_split(
    spec: StreamSpec, sources: list[SourceData], track: Callable[..., Iterator[Any]] | None
) -> PreparedData:
    pools = [pool for source in sources for pool in source.load_pools()]
    names = [pool.name for pool in pools]
    if len(set(names)) != len(names):
        raise ConfigError(f"stream {spec.name!r}: class names repeat across sources")
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
            f"stream {spec.name!r}: unknown source kind {kind!r}; known: {sorted(SOURCES)}"
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


class Stream:
    """A built stream: its static facts, the Avalanche benchmark, and experiences as tensors."""

    def __init__(
        self,
        spec: StreamSpec,
        data: PreparedData,
        seed: int,
        limit_per_class: int | None,
        split: str = "test",
    ):
        self.spec = spec
        self.data = data  # every image of the stream, for the backend's feature cache
        self.seed = seed
        self.limit_per_class = limit_per_class
        self.split = split
        self.class_order = class_order(len(data.class_names), seed)
        # Relabel so that labels are positions in the class order (PyCIL convention).
        position = torch.empty(len(self.class_order), dtype=torch.int64)
        position[torch.tensor(self.class_order)] = torch.arange(len(self.class_order))
        labels = position[data.labels]
        if split == "validation":
            train_mask, test_mask = _hold_out(data.labels, ~data.is_test)
        else:
            train_mask, test_mask = ~data.is_test, data.is_test
        train_index = _limit(labels, train_mask, limit_per_class)
        test_index = test_mask.nonzero().squeeze(1)
        sizes = _experience_sizes(len(self.class_order), spec)
        self.info = StreamInfo(
            name=spec.name,
            class_names=tuple(data.class_names[c] for c in self.class_order),
            classes_per_experience=_chunks(range(len(self.class_order)), sizes),
            resolution=spec.resolution,
        )
        self.benchmark = _avalanche_benchmark(
            (data.images[train_index], labels[train_index]),
            (data.images[test_index], labels[test_index]),
            sizes,
        )

    def experiences(self) -> Iterator[tuple[Experience, Experience]]:
        """(train, test) experience pairs, in order, read from the Avalanche benchmark."""
        for train, test in zip(
            self.benchmark.train_stream, self.benchmark.test_stream, strict=True
        ):
            yield _from_avalanche(train), _from_avalanche(test)


def build_stream(
    spec: StreamSpec,
    *,
    seed: int = 1993,
    limit_per_class: int | None = None,
    use_cache: bool = True,
    track: Callable[..., Iterator[Any]] | None = None,
    split: str = "test",
    context: DataContext | None = None,
) -> Stream:
    """``split="validation"`` evaluates on held-out training images, for choosing defaults
    without looking at the test split; ``context`` says where user data lives."""
    if limit_per_class is not None and limit_per_class < 1:
        raise ConfigError(f"--limit-per-class must be at least 1, got {limit_per_class}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    prepared = prepare(spec, use_cache=use_cache, track=track, context=context)
    return Stream(spec, prepared, seed, limit_per_class, split)


def _hold_out(labels: torch.Tensor, train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the training images of each class into (train, validation) masks, seeded.

    ``labels`` are spec-order labels, so the held-out images do not depend on the class order.
    """
    held = torch.zeros_like(train)
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    for label in labels[train].unique().tolist():
        index = (train & (labels == label)).nonzero().squeeze(1)
        count = max(1, round(VALIDATION_FRACTION * len(index)))
        held[index[torch.randperm(len(index), generator=generator)[:count]]] = True
    return train & ~held, held


def _limit(labels: torch.Tensor, mask: torch.Tensor, limit: int | None) -> torch.Tensor:
    index = mask.nonzero().squeeze(1)
    if limit is None:
        return index
    keep = [index[labels[index] == c][:limit] for c in labels[index].unique().tolist()]
    return torch.cat(keep).sort().values


def _experience_sizes(num_classes: int, spec: StreamSpec) -> list[int]:
    first = spec.initial_classes or spec.increment
    if first > num_classes:
        raise ConfigError(f"stream {spec.name!r}: {first} initial classes but only {num_classes}")
    rest = num_classes - first
    sizes = [first] + [spec.increment] * (rest // spec.increment)
    if rest % spec.increment:
        sizes.append(rest % spec.increment)
    return sizes


def _chunks(items: range, sizes: list[int]) -> tuple[tuple[int, ...], ...]:
    bounds = np.cumsum([0, *sizes])
    return tuple(tuple(items[a:b]) for a, b in itertools.pairwise(bounds))


def _avalanche_benchmark(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    sizes: list[int],
) -> Any:
    # Imported here: avalanche takes seconds to import and only runs need it.
    from avalanche.benchmarks.scenarios import class_incremental_benchmark
    from avalanche.benchmarks.utils import DataAttribute
    from avalanche.benchmarks.utils.classification_dataset import ClassificationDataset
    from torch.utils.data import TensorDataset

    def dataset(images: torch.Tensor, labels: torch.Tensor) -> ClassificationDataset:
        # Task labels (all 0: class-incremental) make items (x, y, t), as Avalanche expects.
        return ClassificationDataset(
            [TensorDataset(images, labels)],
            data_attributes=[
                DataAttribute(labels.tolist(), "targets"),
                DataAttribute([0] * len(labels), "targets_task_labels", use_in_getitem=True),
            ],
        )

    return class_incremental_benchmark(
        {"train": dataset(*train), "test": dataset(*test)},
        class_order=list(range(sum(sizes))),
        num_classes_per_exp=sizes,
    )


def _from_avalanche(experience: Any) -> Experience:
    loader = torch.utils.data.DataLoader(experience.dataset, batch_size=4096, shuffle=False)
    batches = list(loader)
    return Experience(
        index=experience.current_experience,
        classes=tuple(sorted(experience.classes_in_this_experience)),
        images=torch.cat([b[0] for b in batches]),
        labels=torch.cat([b[1] for b in batches]),
    )

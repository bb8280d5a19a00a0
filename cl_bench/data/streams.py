"""Builds a stream from its spec: prepared images, a seeded class order, experiences as
tensors, and, on demand, the same experiences as an Avalanche class-incremental benchmark
(for Avalanche's own strategies; importing Avalanche takes seconds and ~110 MiB, so a
run whose strategy does not use it never loads it)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from cl_bench.data.experience import Experience, StreamInfo
from cl_bench.data.prepared import PreparedData, data_sha256, prepare
from cl_bench.data.sources.base import DataContext
from cl_bench.data.spec import StreamSpec
from cl_bench.utils.errors import ConfigError, shortened

SPLITS = ("test", "validation")
VALIDATION_FRACTION = 0.2  # of each class's training images, held out by --split validation
VALIDATION_SEED = 0  # the same held-out images for every class order


def class_order(num_classes: int, seed: int) -> list[int]:
    """The class order PyCIL and PILOT use: ``np.random.seed(seed); permutation(n)``."""
    return np.random.RandomState(seed).permutation(num_classes).tolist()


class Stream:
    """A built stream: its static facts, experiences as tensors, and (built on first use)
    the Avalanche benchmark holding the same images in the same order."""

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
        self._train = _limit(labels, train_mask, limit_per_class)
        self._test = test_mask.nonzero().squeeze(1)
        self._labels = labels
        sizes = _experience_sizes(len(self.class_order), spec)
        self.info = StreamInfo(
            name=spec.name,
            class_names=tuple(data.class_names[c] for c in self.class_order),
            classes_per_experience=_chunks(range(len(self.class_order)), sizes),
            resolution=spec.resolution,
        )

    @functools.cached_property
    def data_sha256(self) -> str:
        """The prepared data's checksum (before class order, limit and split): records
        keep it, so that a rerun on different data is caught before it trains."""
        return data_sha256(self.data)

    @property
    def num_train_images(self) -> int:
        return len(self._train)

    @functools.cached_property
    def benchmark(self) -> Any:
        """The stream as an Avalanche class-incremental benchmark (classes already in
        stream order); its experiences hold exactly the images of :meth:`experiences`."""
        return _avalanche_benchmark(
            (self.data.images[self._train], self._labels[self._train]),
            (self.data.images[self._test], self._labels[self._test]),
            [len(classes) for classes in self.info.classes_per_experience],
        )

    def experiences(self) -> Iterator[tuple[Experience, Experience]]:
        """(train, test) experience pairs, in order, with the images and order of the
        Avalanche benchmark's experiences, which ``origin()`` returns."""
        for index, classes in enumerate(self.info.classes_per_experience):
            yield tuple(  # type: ignore[misc]
                self._experience(index, classes, rows, stream)
                for rows, stream in ((self._train, "train_stream"), (self._test, "test_stream"))
            )

    def _experience(
        self, index: int, classes: tuple[int, ...], rows: torch.Tensor, stream: str
    ) -> Experience:
        # Avalanche's order (its benchmark prepends class by class): the experience's
        # classes last to first, each class's images in stream order. Records made when
        # experiences were read from Avalanche keep their numbers.
        labels = self._labels[rows]
        rows = torch.cat([rows[labels == label] for label in reversed(classes)])
        return Experience(
            index=index,
            classes=classes,
            images=self.data.images[rows],
            labels=self._labels[rows],
            origin=lambda: getattr(self.benchmark, stream)[index],
        )


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
        raise ConfigError(f"unknown split {shortened(split)}; choose one of {', '.join(SPLITS)}")
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
        raise ConfigError(
            f"stream {shortened(spec.name)}: {first} initial classes but only {num_classes}"
        )
    rest = num_classes - first
    sizes = [first] + [spec.increment] * (rest // spec.increment)
    if rest % spec.increment:
        sizes.append(rest % spec.increment)
    return sizes


def _chunks(items: range, sizes: list[int]) -> tuple[tuple[int, ...], ...]:
    bounds = np.cumsum([0, *sizes])
    return tuple(tuple(items[a:b]) for a, b in itertools.pairwise(bounds))


class LabelledImages(torch.utils.data.Dataset):
    """``(image, int label)`` pairs: Avalanche's item convention (a plain TensorDataset
    would give 0-d tensor labels, which cannot be batched with Avalanche's buffers). The
    stream's Avalanche datasets hold these, and a restored replay buffer is rebuilt on one."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.labels[index]


def _avalanche_benchmark(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    sizes: list[int],
) -> Any:
    # Imported here: avalanche takes seconds to import and only runs need it.
    from avalanche.benchmarks.scenarios import class_incremental_benchmark
    from avalanche.benchmarks.utils import DataAttribute
    from avalanche.benchmarks.utils.classification_dataset import (
        TaskAwareSupervisedClassificationDataset as Dataset,
    )
    from avalanche.benchmarks.utils.flat_data import ConstantSequence

    def dataset(images: torch.Tensor, labels: torch.Tensor) -> Dataset:
        # As Avalanche's own tensor datasets: task-aware (LwF reads `task_set`), items
        # (x, y, t) with int y, task labels t (all 0: class-incremental) in a
        # ConstantSequence, so that strategies can concatenate these with their replay
        # buffers and batch the two (iCaRL does).
        return Dataset(
            [LabelledImages(images, labels)],
            data_attributes=[
                DataAttribute(labels.tolist(), "targets"),
                DataAttribute(
                    ConstantSequence(0, len(labels)), "targets_task_labels", use_in_getitem=True
                ),
            ],
        )

    return class_incremental_benchmark(
        {"train": dataset(*train), "test": dataset(*test)},
        class_order=list(range(sum(sizes))),
        num_classes_per_exp=sizes,
    )

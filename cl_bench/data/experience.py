"""What a strategy sees of a stream: experiences as tensors, and the stream's static facts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class StreamInfo:
    """Facts a strategy may use at set-up: nothing here leaks future data.

    Labels are positions in the class order: the classes of experience 0 are
    ``0 .. n0-1``, those of experience 1 follow, and so on, so that "the classes seen
    so far" is always a prefix ``range(n)``.
    """

    name: str
    class_names: tuple[str, ...]
    classes_per_experience: tuple[tuple[int, ...], ...]
    resolution: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_experiences(self) -> int:
        return len(self.classes_per_experience)


@dataclass(frozen=True)
class Experience:
    """One experience's images (uint8, N x 3 x H x W, RGB) and labels.

    ``origin()`` returns the same experience as Avalanche holds it (built on first
    call; None for one built by hand), for strategies that run Avalanche's own training
    loop on it.
    """

    index: int
    classes: tuple[int, ...]
    images: torch.Tensor
    labels: torch.Tensor
    origin: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(images, labels)`` batches; shuffled with ``generator`` for determinism."""
        if shuffle:
            order = torch.randperm(len(self), generator=generator)
        else:
            order = torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            index = order[start : start + batch_size]
            yield self.images[index], self.labels[index]

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

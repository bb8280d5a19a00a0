"""The thread policy: how many torch threads a run uses (docs/reproducing.md).

CPU reductions sum in an order that depends on the thread count, so a trained
strategy's numbers depend on it (SEMA's threshold decisions by whole points). Every run
uses one thread unless told otherwise, as the committed records do: a newcomer's
``clbench evaluate`` then gives the committed numbers, and sweeps get their
parallelism from running several runs at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from cl_bench.utils.errors import ConfigError

DEFAULT_THREADS = 1


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with ``count`` intra-op torch threads, restoring the caller's count after."""
    if count < 1:
        raise ConfigError(f"--threads must be at least 1, got {count}")
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)

"""Computation that will never change again, memoised per image of the registered data.

Once a strategy freezes something for good (an adapter set of a finished task, or all
blocks before the first one that still trains), its output for an image is the same at
every later epoch, experience and evaluation. :class:`FixedComputation` runs it once
per image and answers later calls from memory. Registered images are computed in
fixed chunks of the registered data (a chunk at a time, whichever of its images was
asked for): a result can differ in its last bits with the batch it was computed in, and
a run resumed from a checkpoint, whose memory starts empty, must compute every image in
the batch the uninterrupted run computed it in. It lives beside the feature cache
rather than in it: the frozen backbone's outputs are worth keeping on disk for every
run, a run's adapters only for that run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from cl_bench.models.backend import Backend


class FixedComputation:
    """``compute(images)`` for uint8 images, each image of the registered data computed once.

    Rows are found by image content, so any batch order or mix of images hits. Images
    outside the registered data (augmented copies, say) are computed fresh on every
    call and never stored, as the backend's feature cache does. A new registration
    (another stream) empties the memo. ``compute`` must be deterministic and must not
    depend on anything that still changes; that is the caller's promise.
    """

    def __init__(self, backend: Backend, compute: Callable[[torch.Tensor], torch.Tensor]):
        self._backend = backend
        self._compute = compute
        self._fingerprint: str | None = None
        self._values: torch.Tensor | None = None
        self._filled: torch.Tensor | None = None
        self.computed = 0  # images run through ``compute`` (for tests and benchmarks)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if not self._backend.reuse_fixed:
            return self._run(images)
        fingerprint, rows = self._backend.dataset_rows(images)
        if fingerprint != self._fingerprint:
            self._fingerprint, self._values, self._filled = fingerprint, None, None
        known = rows >= 0
        if not bool(known.any()):
            return self._run(images)
        missing = known.clone()
        if self._filled is not None:
            missing[known] = ~self._filled[rows[known]]
        if bool(missing.any()):
            self._compute_chunks(rows[missing])
        assert self._values is not None
        out = self._values[rows.clamp(min=0).to(self._values.device)]
        if not bool(known.all()):
            out[(~known).to(out.device)] = self._run(images[~known]).to(out.dtype)
        return out

    def _compute_chunks(self, rows: torch.Tensor) -> None:
        """Every chunk of the registered data that holds one of ``rows``, whole."""
        size, total = self._backend.batch_size, self._backend.dataset_size()
        for chunk in (rows // size).unique().tolist():
            start, stop = chunk * size, min((chunk + 1) * size, total)
            images = self._backend.dataset_images(start, stop)
            self.computed += len(images)
            self._store(torch.arange(start, stop), self._compute(images))

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        self.computed += len(images)
        return self._backend.batched(self._compute, images)

    def _store(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        if self._values is None:
            size = self._backend.dataset_size()
            # torch.empty: rows never filled are never touched, so they cost no memory
            self._values = torch.empty(size, *values.shape[1:], dtype=values.dtype,
                                       device=values.device)  # fmt: skip
            self._filled = torch.zeros(size, dtype=torch.bool)
        assert self._filled is not None
        self._values[rows.to(self._values.device)] = values
        self._filled[rows] = True

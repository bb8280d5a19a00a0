"""Compatibility of representations across model updates (CL2R, OCA, lambda-orth).

A retrieval system embeds its gallery once, with the model current at the time; after
an update, new queries are compared with that old gallery. ``C[t][k]`` is a retrieval
score of queries embedded by model t against the gallery embedded by model k (k <= t),
on the classes the gallery holds. From C (see docs/compatibility.md):

- AC = 2 / (T (T - 1)) * #{t > k : C[t][k] > C[k][k]} (strict: empirical compatibility
  criterion for every pair of models);
- AM = mean of C over k <= t;
- ECC for the update t-1 -> t: C[t][t-1] > C[t-1][t-1].

Scores (all in %): ``search_top1``, 1:N search against L2-normalised class-mean
templates (CL2R); ``cmc_top1``, ``cmc_top5`` and ``map`` against the gallery images
themselves, cosine similarity, each query's own image left out (OCA, lambda-orth).
Features of different widths are compared on their common leading dimensions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

SCORES = ("search_top1", "cmc_top1", "cmc_top5", "map")


def common_width(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a`` and ``b`` cut to their common leading dimensions: how OCA compares features
    of models that widen with each update (the older model's dimensions come first)."""
    width = min(a.shape[1], b.shape[1])
    return a[:, :width], b[:, :width]


def _class_sums(
    unit: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class: the sum of its unit features, the classes, and membership (C x N)."""
    classes = labels.unique()
    member = labels[None, :] == classes[:, None]
    return member.float() @ unit, classes, member


def class_templates(
    features: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One L2-normalised mean per class (of L2-normalised features), and the classes."""
    sums, classes, _ = _class_sums(F.normalize(features.float(), dim=1), labels)
    return F.normalize(sums, dim=1), classes


def search_top1(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    gallery: torch.Tensor,
    gallery_labels: torch.Tensor,
    query_ids: torch.Tensor | None = None,
    gallery_ids: torch.Tensor | None = None,
) -> float | None:
    """1:N search: share of queries whose most similar class template is their class.

    With ids, a query's own image is left out of its class's template (queries and
    gallery are the same test images). A query whose class has no other image has no
    right answer and is skipped, as in :func:`instance_retrieval`; if every query is
    skipped (one test image per class), the score is undefined: None.
    """
    queries, gallery = common_width(F.normalize(queries.float(), dim=1), gallery.float())
    unit = F.normalize(gallery, dim=1)
    sums, classes, member = _class_sums(unit, gallery_labels)
    similarity = queries @ F.normalize(sums, dim=1).T
    answerable = torch.ones(len(queries), dtype=torch.bool, device=queries.device)
    if query_ids is not None and gallery_ids is not None:
        own = (query_ids[:, None] == gallery_ids[None, :]).float()  # queries x gallery
        has_own = own.sum(1) > 0
        own_feature = own @ unit
        column = (classes[None, :] == gallery_labels[own.argmax(1)][:, None]).float().argmax(1)
        rows = has_own.nonzero().squeeze(1)
        left = sums[column[rows]] - own_feature[rows]
        similarity[rows, column[rows]] = (queries[rows] * F.normalize(left, dim=1)).sum(1)
        answerable[rows] = member.sum(1)[column[rows]] > 1
    if not answerable.any():
        return None
    nearest = classes[similarity.argmax(1)]
    return 100.0 * (nearest == query_labels)[answerable].float().mean().item()


def instance_retrieval(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    gallery: torch.Tensor,
    gallery_labels: torch.Tensor,
    query_ids: torch.Tensor,
    gallery_ids: torch.Tensor,
) -> dict[str, float]:
    """CMC top-1 / top-5 and mAP (%) by cosine similarity.

    ``*_ids`` identify images: a gallery entry with the query's own id (the same image,
    embedded by this or another model) is left out of that query's ranking. Queries
    without any relevant gallery entry are skipped; if no query has one (one test image
    per class), the scores are undefined: None.
    """
    queries, gallery = common_width(queries.float(), gallery.float())
    similarity = F.normalize(queries, dim=1) @ F.normalize(gallery, dim=1).T
    similarity[query_ids[:, None] == gallery_ids[None, :]] = float("-inf")
    relevant = query_labels[:, None] == gallery_labels[None, :]
    relevant &= query_ids[:, None] != gallery_ids[None, :]
    keep = relevant.any(1)
    if not keep.any():
        return {"cmc_top1": None, "cmc_top5": None, "map": None}
    similarity, relevant = similarity[keep], relevant[keep]
    order = similarity.argsort(dim=1, descending=True, stable=True)
    hits = relevant.gather(1, order).float()
    ranks = torch.arange(1, hits.shape[1] + 1, device=hits.device)
    precision = hits.cumsum(1) / ranks
    average_precision = (precision * hits).sum(1) / hits.sum(1)
    return {
        "cmc_top1": 100.0 * hits[:, :1].amax(1).mean().item(),
        "cmc_top5": 100.0 * hits[:, :5].amax(1).mean().item(),
        "map": 100.0 * average_precision.mean().item(),
    }


def summarise(matrix: Sequence[Sequence[float | None]]) -> dict[str, object]:
    """AC, AM and per-update ECC from a lower-triangular C (row t has t + 1 entries).

    Undefined entries (None) are left out; what rests on them is None.
    """
    steps = len(matrix)

    def holds(t: int, k: int) -> bool | None:
        new, old = matrix[t][k], matrix[k][k]
        return None if new is None or old is None else bool(new > old)

    pairs = [holds(t, k) for t in range(steps) for k in range(t)]
    defined = [p for p in pairs if p is not None]
    values = [value for row in matrix for value in row if value is not None]
    return {
        "ac": float(np.mean(defined)) if defined else None,
        "am": float(np.mean(values)) if values else None,
        "ecc": [holds(t, t - 1) for t in range(1, steps)],
    }


class CompatibilityTracker:
    """Builds C after each experience for every score, keeping each model's gallery.

    The gallery of model k is the test images of the classes seen up to k, embedded by
    model k when it was current and never re-embedded. The queries of model t are the
    same kind of images embedded by model t; for C[t][k] only the classes of gallery k
    are queried (the first images, since test sets are appended in experience order).
    """

    def __init__(self) -> None:
        self.galleries: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.matrices: dict[str, list[list[float]]] = {score: [] for score in SCORES}

    def update(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        ids: torch.Tensor,
        into_space: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    ) -> None:
        """Add model t: its embeddings of every test image seen so far (experience order).

        ``into_space(features, k)`` expresses them in model k's space (default: as is).
        """
        self.galleries.append((features, labels, ids))
        rows: dict[str, list[float]] = {score: [] for score in SCORES}
        for k, (gallery, gallery_labels, gallery_ids) in enumerate(self.galleries):
            n = len(gallery_ids)
            mapped = features[:n] if into_space is None else into_space(features[:n], k)
            query = (mapped, labels[:n])
            pair = (gallery, gallery_labels, ids[:n], gallery_ids)
            scores = {"search_top1": search_top1(*query, *pair)}
            scores |= instance_retrieval(*query, *pair)
            for score in SCORES:
                rows[score].append(scores[score])
        for score in SCORES:
            self.matrices[score].append(rows[score])

    def state_dict(self) -> dict[str, Any]:
        return {"galleries": [list(g) for g in self.galleries], "matrices": self.matrices}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.galleries = [tuple(g) for g in state["galleries"]]
        self.matrices = {score: [list(row) for row in m] for score, m in state["matrices"].items()}

    def summary(self) -> dict[str, dict[str, object]]:
        return {score: {"matrix": m, **summarise(m)} for score, m in self.matrices.items()}

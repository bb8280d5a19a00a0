"""Continual-learning metrics from the accuracy matrix, as defined in docs/metrics.md.

``correct[t][j]`` and ``counts[j]``: correct predictions on experience j's test set
after training experience t (only j <= t is defined). All accuracies are percentages.
Forgetting is reported both ways the literature computes it, under distinct names:

- ``forgetting_max`` (PILOT, Mammoth): mean over j < T of max_{l<T} a[l][j] - a[T][j];
- ``forgetting_initial`` (Avalanche): mean over j < T of a[j][j] - a[T][j].

``bwt`` = mean over j < T of a[T][j] - a[j][j] (= -forgetting_initial).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy_matrix(correct: Sequence[Sequence[int]], counts: Sequence[int]) -> np.ndarray:
    """Lower-triangular T x T matrix of per-experience accuracies (%), NaN above the diagonal."""
    steps = len(correct)
    matrix = np.full((steps, steps), np.nan)
    for t, row in enumerate(correct):
        if len(row) != t + 1:
            raise ValueError(f"row {t} has {len(row)} entries, expected {t + 1}")
        matrix[t, : t + 1] = 100.0 * np.asarray(row, dtype=float) / np.asarray(counts[: t + 1])
    return matrix


def accuracy_curve(correct: Sequence[Sequence[int]], counts: Sequence[int]) -> np.ndarray:
    """A_t: accuracy (%) on the union of test sets seen after step t, weighted by their sizes."""
    return np.array(
        [100.0 * sum(row) / sum(counts[: t + 1]) for t, row in enumerate(correct)], dtype=float
    )


def average_incremental_accuracy(curve: np.ndarray) -> float:
    return float(np.mean(curve))


def last_accuracy(curve: np.ndarray) -> float:
    return float(curve[-1])


def forgetting_max(matrix: np.ndarray) -> float | None:
    steps = len(matrix)
    if steps < 2:
        return None
    best_before_last = np.nanmax(matrix[:-1, :-1], axis=0)
    return float(np.mean(best_before_last - matrix[-1, :-1]))


def forgetting_initial(matrix: np.ndarray) -> float | None:
    steps = len(matrix)
    if steps < 2:
        return None
    return float(np.mean(np.diag(matrix)[:-1] - matrix[-1, :-1]))


def backward_transfer(matrix: np.ndarray) -> float | None:
    value = forgetting_initial(matrix)
    return None if value is None else -value


def summarise(correct: Sequence[Sequence[int]], counts: Sequence[int]) -> dict[str, object]:
    """Every figure the record and leaderboard carry, from raw counts."""
    matrix = accuracy_matrix(correct, counts)
    curve = accuracy_curve(correct, counts)
    return {
        "accuracy_matrix": [[None if np.isnan(v) else float(v) for v in row] for row in matrix],
        "accuracy_curve": curve.tolist(),
        "average_incremental_accuracy": average_incremental_accuracy(curve),
        "last_accuracy": last_accuracy(curve),
        "forgetting_max": forgetting_max(matrix),
        "forgetting_initial": forgetting_initial(matrix),
        "bwt": backward_transfer(matrix),
    }

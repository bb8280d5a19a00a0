"""Compatibility matrices as one PNG: which model's queries reach which gallery.

``draw_heatmaps`` draws any set of lower-triangular matrices C[t][k] (rows = query
model t, columns = gallery k), two panels a row; a run's PNG (``clbench evaluate``)
and the seed-averaged PNGs of ``clbench report`` are both drawn by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cl_bench.results.text import plot_text
from cl_bench.utils.files import write_atomically

PANELS = {
    "search_top1": "1:N search top-1 (%)",
    "cmc_top1": "CMC top-1 (%)",
    "cmc_top5": "CMC top-5 (%)",
    "map": "mAP (%)",
}

Matrix = Sequence[Sequence[float]]


def write_compatibility_heatmap(record: dict[str, Any], path: Path) -> Path:
    """C[t][k] for every score of ``record``, rows = query model t, columns = gallery k."""
    compatibility = record["metrics"]["compatibility"]
    panels = {}
    for score, name in PANELS.items():
        summary = compatibility[score]
        ac, am = _number(summary["ac"], 2), _number(summary["am"], 1)
        panels[f"{name}: AC {ac}, AM {am}"] = summary["matrix"]
    names = (plot_text(record[key]) for key in ("strategy", "stream", "backbone"))
    title = "{} on {} with {}, ".format(*names) + f"seed {record['seed']}: compatibility C[t][k]"
    return draw_heatmaps(panels, title, path)


def draw_heatmaps(panels: dict[str, Matrix], title: str, path: Path) -> Path:
    """One panel per ``{panel title: matrix}``, two a row, written atomically to ``path``."""
    write_atomically(path, lambda tmp: _draw(panels, title, tmp))
    return path


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _draw(panels: dict[str, Matrix], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows_of_panels = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows_of_panels, 2, figsize=(9.6, 4.2 * rows_of_panels), dpi=100,
                             squeeze=False)  # fmt: skip
    for ax, (panel_title, rows) in zip(axes.flat, panels.items(), strict=False):
        steps = len(rows)
        matrix = np.full((steps, steps), np.nan)
        for t, row in enumerate(rows):
            matrix[t, : len(row)] = [np.nan if value is None else value for value in row]
        image = ax.imshow(matrix, vmin=0, vmax=100, cmap="viridis")
        if steps <= 12:
            for t in range(steps):
                for k in range(t + 1):
                    if np.isnan(matrix[t, k]):  # undefined score
                        continue
                    colour = "white" if matrix[t, k] < 50 else "black"
                    ax.text(k, t, f"{matrix[t, k]:.0f}", ha="center", va="center",
                            fontsize=7, color=colour)  # fmt: skip
        ax.set_title(panel_title, fontsize=9)
        ax.set_xlabel("gallery embedded by model k")
        ax.set_ylabel("queries embedded by model t")
        ax.set_xticks(range(steps))
        ax.set_yticks(range(steps))
        fig.colorbar(image, ax=ax, fraction=0.046)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def mean_matrix(matrices: Sequence[Sequence[Sequence[float]]]) -> list[list[float]]:
    """The entry-wise mean of matrices of one shape, rows of any lengths (C is triangular)."""
    shapes = {tuple(len(row) for row in matrix) for matrix in matrices}
    if len(shapes) != 1:
        raise ValueError(f"matrices of different shapes (row lengths {sorted(shapes)})")
    return [
        np.mean(np.array([matrix[t] for matrix in matrices], dtype=float), axis=0).tolist()
        for t in range(len(matrices[0]))
    ]

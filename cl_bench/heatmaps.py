"""A run's compatibility matrices as one PNG: which model's queries reach which gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cl_bench.paths import write_atomically

PANELS = {
    "search_top1": "1:N search top-1 (%)",
    "cmc_top1": "CMC top-1 (%)",
    "cmc_top5": "CMC top-5 (%)",
    "map": "mAP (%)",
}


def write_compatibility_heatmap(record: dict[str, Any], path: Path) -> Path:
    """C[t][k] for every score of ``record``, rows = query model t, columns = gallery k."""
    compatibility = record["metrics"]["compatibility"]
    write_atomically(path, lambda tmp: _draw(record, compatibility, tmp))
    return path


def _draw(record: dict[str, Any], compatibility: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9.6, 8.4), dpi=100)
    for ax, (score, title) in zip(axes.flat, PANELS.items(), strict=True):
        rows = compatibility[score]["matrix"]
        steps = len(rows)
        matrix = np.full((steps, steps), np.nan)
        for t, row in enumerate(rows):
            matrix[t, : len(row)] = [np.nan if value is None else value for value in row]
        image = ax.imshow(matrix, vmin=0, vmax=100, cmap="viridis")
        if steps <= 12:
            for t in range(steps):
                for k in range(t + 1):
                    colour = "white" if matrix[t, k] < 50 else "black"
                    ax.text(k, t, f"{matrix[t, k]:.0f}", ha="center", va="center",
                            fontsize=7, color=colour)  # fmt: skip
        summary = compatibility[score]
        ac = "n/a" if summary["ac"] is None else f"{summary['ac']:.2f}"
        am = "n/a" if summary["am"] is None else f"{summary['am']:.1f}"
        ax.set_title(f"{title}: AC {ac}, AM {am}", fontsize=9)
        ax.set_xlabel("gallery embedded by model k")
        ax.set_ylabel("queries embedded by model t")
        ax.set_xticks(range(steps))
        ax.set_yticks(range(steps))
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(f"{record['strategy']} on {record['stream']} with {record['backbone']}, "
                 f"seed {record['seed']}: compatibility C[t][k]", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)

"""Leaderboards regenerated from run records: CSV (the data), Markdown (the view), PNG (curves).

One row per (strategy, backbone, variant) and stream: mean and sample standard
deviation (ddof=1) over seeds, sorted by mean last accuracy. A row's ``kind`` says
whether it is a continual method or a reference (a bound such as joint training, which
sees all past data): marked in every output, never left out. Output depends only on
the records, so regenerating from the same records gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cl_bench.results.colours import curve_colours
from cl_bench.results.provenance import CODE_COLUMN, KIND_COLUMN, code_state, worst_code_state
from cl_bench.results.records import iter_records
from cl_bench.results.site import check_site_folder, write_site
from cl_bench.results.text import markdown_text, mean_and_std, plot_text
from cl_bench.utils.errors import ConfigError, RecordError
from cl_bench.utils.files import write_atomically
from cl_bench.utils.names import file_name, path_inside

GROUP = ["stream", "strategy", "backbone", "variant"]
METRICS = {
    "last_accuracy": "last accuracy A_T (%)",
    "average_incremental_accuracy": "average incremental accuracy (%)",
    "forgetting_max": "forgetting, max-based as PILOT/Mammoth (%)",
    "forgetting_initial": "forgetting vs accuracy right after learning, as Avalanche (%)",
    "bwt": "backward transfer (%)",
    "search_ac": "compatibility AC, 1:N search top-1 against class-mean templates (CL2R), "
    "share of model pairs (t > k) meeting the strict criterion, 0-1",
    "search_am": "compatibility AM, 1:N search top-1: mean of C[t][k], k <= t (%)",
    "map_ac": "compatibility AC, instance mAP (OCA, lambda-orth), 0-1",
    "map_am": "compatibility AM, instance mAP: mean of C[t][k], k <= t (%)",
    "wall_seconds": "wall time of the run (s)",
    "peak_rss_mib": "peak resident memory of the run's process (MiB)",
}
SHORT = {
    "last_accuracy": "Last acc",
    "average_incremental_accuracy": "Avg inc acc",
    "forgetting_max": "Forgetting (max)",
    "forgetting_initial": "Forgetting (Avalanche)",
    "bwt": "BWT",
    "search_ac": "AC (search)",
    "search_am": "AM (search)",
    "map_ac": "AC (mAP)",
    "map_am": "AM (mAP)",
    "wall_seconds": "Time (s)",
    "peak_rss_mib": "Peak memory (MiB)",
}


def _kind(record: dict[str, Any]) -> str:
    """A reference, a continual method at its settings, or one whose settings
    ``clbench tune`` chose on the validation split (and with how many trials)."""
    if record.get("reference"):
        return "reference"
    tuning = record.get("tuning")
    if tuning:
        return f"continual, tuned on validation ({tuning['trials']} trials)"
    return "continual"


def load_runs(records_dir: Path) -> pd.DataFrame:
    rows = []
    for path, record in iter_records(records_dir):
        metrics = record["metrics"]
        rows.append(
            {
                "stream": record["stream"],
                "strategy": record["strategy"],
                "backbone": record["backbone"],
                "variant": record.get("variant", ""),
                "kind": _kind(record),
                "code": code_state(record),
                "seed": record["seed"],
                "curve": metrics["accuracy_curve"],
                "trainable_parameters": record["resources"]["trainable_parameters"],
                "rehearsal_samples": record["resources"].get("rehearsal_samples", 0),
                "path": str(path),
                "record": record,
                "accuracy_matrix": metrics.get("accuracy_matrix"),
                "compatibility": metrics.get("compatibility", {}),
                **{key: metrics.get(key, record["resources"].get(key)) for key in METRICS},
                **_compatibility_columns(metrics.get("compatibility", {})),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    dupes = frame[frame.duplicated([*GROUP, "seed"], keep=False)]
    if not dupes.empty:
        raise RecordError(
            "several records for the same run (stream, strategy, backbone, variant, seed): "
            + ", ".join(dupes["path"])
            + "; keep one of each"
        )
    lengths = frame["curve"].map(len)
    for key, group in frame.groupby(GROUP):
        if lengths[group.index].nunique() > 1:
            raise RecordError(
                f"records of {dict(zip(GROUP, key, strict=True))} have different numbers of "
                "experiences (the same name for two splits of a stream?): "
                + ", ".join(group["path"])
                + "; keep the records of one split"
            )
    return frame


def _compatibility_columns(compatibility: dict[str, Any]) -> dict[str, float | None]:
    """AC and AM of the search and mAP matrices (None for records without them)."""
    columns: dict[str, float | None] = {}
    for prefix, score in (("search", "search_top1"), ("map", "map")):
        summary = compatibility.get(score, {})
        columns[f"{prefix}_ac"] = summary.get("ac")
        columns[f"{prefix}_am"] = summary.get("am")
    return columns


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per group: n and seeds, then mean and std of every metric."""
    groups = []
    for key, group in runs.groupby(GROUP, sort=True):
        row: dict[str, Any] = dict(zip(GROUP, key, strict=True))
        kinds = sorted(set(group["kind"]), key=lambda kind: kind == "continual")
        row["kind"] = "reference" if "reference" in kinds else kinds[0]
        row["code"] = worst_code_state(group["code"])
        row["seeds"] = " ".join(str(s) for s in sorted(group["seed"]))
        row["n_seeds"] = len(group)
        row["trainable_parameters"] = int(group["trainable_parameters"].max())
        row["rehearsal_samples"] = int(group["rehearsal_samples"].max())
        for metric in METRICS:
            values = pd.to_numeric(group[metric], errors="coerce").dropna()
            row[f"{metric}_mean"] = values.mean() if len(values) else np.nan
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else np.nan
        groups.append(row)
    table = pd.DataFrame(groups)
    return table.sort_values(
        ["stream", "last_accuracy_mean", "strategy", "backbone", "variant"],
        ascending=[True, False, True, True, True],
        kind="mergesort",
    ).reset_index(drop=True)


def read_runs(records_dir: Path) -> pd.DataFrame:
    """``load_runs``, refusing a folder without records."""
    runs = load_runs(records_dir)
    if runs.empty:
        raise RecordError(f"no run records under {records_dir}; run `clbench evaluate` first")
    return runs


def write_leaderboards(
    records_dir: Path,
    out_dir: Path,
    site_dir: Path | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> list[Path]:
    """Regenerate ``<stream>.csv``, ``<stream>.md`` and ``<stream>-curves.png`` per stream,
    and the site (``site_dir``, by default ``out_dir/site``)."""
    return write_leaderboard_files(read_runs(records_dir), out_dir, site_dir, descriptions)


def curves_name(stream: str) -> str:
    return f"{file_name(stream, 'stream')}-curves.png"


def leaderboard_paths(out_dir: Path, stream: str) -> tuple[Path, Path, Path]:
    """``<stream>.csv``, ``<stream>.md`` and ``<stream>-curves.png`` inside ``out_dir``."""
    name = file_name(stream, "stream")
    return (path_inside(out_dir, f"{name}.csv"), path_inside(out_dir, f"{name}.md"),
            path_inside(out_dir, curves_name(stream)))  # fmt: skip


def write_leaderboard_files(
    runs: pd.DataFrame,
    out_dir: Path,
    site_dir: Path | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> list[Path]:
    """The leaderboard files of every stream in ``runs`` (as ``load_runs`` gives them),
    then the site; ``descriptions`` (strategy name -> its plugin's line) label its pages."""
    site = site_dir or out_dir / "site"
    check_site_folder(site)  # before anything is written
    if out_dir.resolve() == site.resolve() or out_dir.resolve().is_relative_to(site.resolve()):
        raise ConfigError(
            f"--html {site} holds --out {out_dir}: the site replaces its folder as a whole, "
            "so the leaderboards written there would be deleted; give --html a folder of "
            "its own (by default OUT/site)"
        )
    table = aggregate(runs)
    # Every path first: a name that cannot be a file name stops the run before a write.
    streams = [(stream, rows.drop(columns="stream"), leaderboard_paths(out_dir, str(stream)))
               for stream, rows in table.groupby("stream", sort=True)]  # fmt: skip
    written = []
    for stream, rows, (csv_path, md_path, plot_path) in streams:
        write_atomically(
            csv_path,
            lambda tmp, rows=rows: rows.to_csv(
                tmp, index=False, float_format="%.4f", lineterminator="\n"
            ),
        )
        write_atomically(plot_path, lambda tmp, s=stream: _plot_curves(runs[runs.stream == s], tmp))
        text = markdown(stream, rows, plot_path.name)
        write_atomically(md_path, lambda tmp, text=text: tmp.write_text(text))
        written += [csv_path, md_path, plot_path]
    short_and_long = {m: (SHORT[m], text) for m, text in METRICS.items()}
    written.append(write_site(runs, table, site, short_and_long, descriptions) / "index.html")
    return written


def markdown(stream: str, rows: pd.DataFrame, plot_name: str) -> str:
    lines = [
        f"# Leaderboard: {markdown_text(stream)}",
        "",
        "Generated by `clbench leaderboard` from the run records; do not edit. "
        "Mean ± sample std over seeds; accuracies in %.",
        "",
        *table_lines(rows),
        "",
        f"![accuracy curves]({plot_name})",
        "",
    ]
    return "\n".join(lines)


def table_lines(rows: pd.DataFrame) -> list[str]:
    """The leaderboard table of one stream's rows of ``aggregate``, then what each column is."""
    header = ["Strategy", "Kind", "Backbone", "Variant", "Code", "Seeds", "Rehearsal",
              *SHORT.values()]  # fmt: skip
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 6 + ["---:"] * (1 + len(SHORT))) + "|",
    ]
    for _, row in rows.iterrows():
        names = [row["strategy"], row["kind"], row["backbone"], row["variant"] or "default",
                 row["code"]]  # fmt: skip
        cells = [*map(markdown_text, names), str(row["n_seeds"])]
        cells.append(f"{row['rehearsal_samples']:,}")
        cells += [mean_and_std(row[f"{m}_mean"], row[f"{m}_std"]) for m in SHORT]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Columns:", ""]
    lines.append(f"- Kind: {KIND_COLUMN}")
    lines.append(f"- Code: {CODE_COLUMN}")
    lines.append("- Rehearsal: samples of past experiences the strategy keeps for training "
                 "at the end of the stream (0: exemplar-free)")  # fmt: skip
    lines += [f"- {SHORT[m]}: {text}" for m, text in METRICS.items()]
    return lines


def _plot_curves(runs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(runs.groupby(["strategy", "backbone", "variant"], sort=True))
    # Legend order = final accuracy, best first; 20 distinct colours, then new markers.
    groups.sort(key=lambda item: -np.mean([curve[-1] for curve in item[1]["curve"]]))
    palette, greys = curve_colours(), ["0.0", "0.45", "0.7"]
    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    continual = references = 0
    for key, group in groups:
        curves = np.array(group["curve"].tolist(), dtype=float)
        steps = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(axis=0)
        label = plot_text(" / ".join(k for k in key if k))
        if (group["kind"] == "reference").any():
            style = {"linestyle": "--", "marker": "x", "color": greys[references % 3]}
            label, references = label + " (reference)", references + 1
        else:
            marker = "os^D"[continual // len(palette) % 4]
            style = {"marker": marker, "color": palette[continual % len(palette)]}
            continual += 1
        ax.plot(steps, mean, markersize=3, label=f"{label} (n={len(curves)})", **style)
        if len(curves) > 1:
            std = curves.std(axis=0, ddof=1)
            ax.fill_between(steps, mean - std, mean + std, alpha=0.08, color=style["color"])
    ax.set_xlabel("experience")
    ax.set_ylabel("accuracy on all classes seen (%)")
    ax.set_title(plot_text(runs["stream"].iloc[0]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)

"""The static leaderboard site: an index of streams, per stream a sortable and filterable
table with toggleable curves and accuracy-matrix heat maps, and per row a page with its
provenance and the commands that reproduce it.

Pages are rendered by Jinja2 with autoescaping on, so every string from records and
plugins is text, never markup; the SVG charts escape their own labels. Numbers come from
:func:`cl_bench.results.leaderboard.aggregate`, the same rows as the CSV, formatted the
same way. Output depends only on the records (and the descriptions given), so
regenerating gives byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from cl_bench.results.colours import curve_colours
from cl_bench.results.heatmaps import mean_matrix
from cl_bench.results.provenance import CODE_COLUMN, KIND_COLUMN, reproduce_command
from cl_bench.results.records import record_text
from cl_bench.results.site.svg import Curve, bars_svg, curves_svg, heatmap_svg, history_svg
from cl_bench.results.text import mean_and_std
from cl_bench.utils.errors import ConfigError
from cl_bench.utils.files import write_folder_atomically
from cl_bench.utils.names import path_inside, url_name

MARKER = ".clbench-site"  # a folder with this file is one the site may replace
CSV_FLOAT = "%.4f"  # the CSV's float format: the table's data values are the CSV's text
GROUP = ["strategy", "backbone", "variant"]


def write_site(
    runs: pd.DataFrame,
    table: pd.DataFrame,
    site_dir: Path,
    metrics: Mapping[str, tuple[str, str]],
    descriptions: Mapping[str, str] | None = None,
) -> Path:
    """Write the site of ``runs`` (``load_runs``) and ``table`` (``aggregate``) to
    ``site_dir``, replacing the previous site there as a whole.

    ``metrics`` maps each metric column to (short name, description); ``descriptions``
    maps strategy names to the one line their plugins give.
    """
    check_site_folder(site_dir)
    renderer = _Renderer(metrics, descriptions or {})
    write_folder_atomically(site_dir, lambda tmp: renderer.write(runs, table, tmp))
    return site_dir


def check_site_folder(site_dir: Path) -> None:
    """Refuse a folder the site would replace but did not make (the user's files)."""
    if site_dir.is_dir() and any(site_dir.iterdir()) and not (site_dir / MARKER).exists():
        raise ConfigError(
            f"{site_dir} is a folder with other files in it, not a leaderboard site; "
            "give --html an empty or new folder (the site replaces its folder as a whole)"
        )


def csv_number(value: Any) -> str:
    """A value as the CSV writes it: floats with the CSV's format, NaN as empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return CSV_FLOAT % value
    return str(value)


def palette(count: int) -> list[str]:
    """Distinct colours, as hex, in the PNG plot's order."""
    from matplotlib.colors import to_hex

    ordered = [to_hex(colour) for colour in curve_colours()]
    return [ordered[i % len(ordered)] for i in range(count)]


class _Renderer:
    def __init__(self, metrics: Mapping[str, tuple[str, str]], descriptions: Mapping[str, str]):
        self.metrics = metrics
        self.descriptions = descriptions
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("cl_bench.results.site", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def write(self, runs: pd.DataFrame, table: pd.DataFrame, out: Path) -> None:
        static = resources.files("cl_bench.results.site") / "static"
        for name in ("site.css", "site.js"):
            (out / name).write_text((static / name).read_text())
        (out / MARKER).write_text("made by `clbench leaderboard`; replaced as a whole\n")
        streams = []
        for stream, rows in table.groupby("stream", sort=True):
            stream_runs = runs[runs.stream == stream]
            streams.append(self._stream(str(stream), rows, stream_runs, out))
        self._page(out / "index.html", "index.html", streams=streams, root="")

    def _page(self, path: Path, template: str, **context: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.env.get_template(template).render(**context))

    def _stream(self, stream: str, rows: pd.DataFrame, runs: pd.DataFrame, out: Path) -> dict:
        name = url_name(stream)
        columns = self._columns()
        entries = []
        colours = iter(palette(len(rows)))
        greys = iter(["#222222", "#737373", "#b3b3b3"] * len(rows))
        for _, row in rows.iterrows():
            key = tuple(row[k] for k in GROUP)
            group = runs[
                (runs.strategy == key[0]) & (runs.backbone == key[1]) & (runs.variant == key[2])
            ]
            entry = self._row(stream, row, group, columns)
            entry["colour"] = next(greys) if entry["reference"] else next(colours)
            entry["href"] = f"{name}/{entry['slug']}.html"
            entries.append(entry)
            self._page(
                path_inside(out, name, f"{entry['slug']}.html"),
                "row.html",
                root="../",
                stream=stream,
                stream_href=f"{name}.html",
                row=entry,
            )
        curves = [
            Curve(
                f"curve-{e['slug']}",
                e["label"],
                e["curve_mean"],
                e["curve_std"],
                e["colour"],
                e["reference"],
            )
            for e in entries
        ]
        continual = [e for e in entries if not e["reference"]]
        summary = {
            "name": stream,
            "href": f"{name}.html",
            "rows": len(entries),
            "references": len(entries) - len(continual),
            "runs": len(runs),
            "best": continual[0] if continual else None,  # rows come best first
        }
        self._page(
            path_inside(out, f"{name}.html"),
            "stream.html",
            root="",
            stream=stream,
            columns=columns,
            rows=entries,
            curves=curves_svg(curves, f"{stream}: accuracy per experience"),
            summary=summary,
        )
        return summary

    def _columns(self) -> list[dict[str, str]]:
        text = [
            ("strategy", "Strategy", "the strategy's registered name"),
            ("kind", "Kind", KIND_COLUMN),
            ("backbone", "Backbone", "the pretrained model"),
            (
                "variant",
                "Variant",
                "non-default settings of the runs (--set, "
                "--limit-per-class, --split, --weights); default: none",
            ),
            ("code", "Code", CODE_COLUMN),
        ]
        numbers = [
            ("n_seeds", "Seeds", "runs averaged (seeds)"),
            (
                "rehearsal_samples",
                "Rehearsal",
                "samples of past experiences kept for "
                "training at the end of the stream (0: exemplar-free)",
            ),
            ("trainable_parameters", "Trainable", "parameters trained"),
        ]
        columns = [{"key": k, "label": s, "title": t, "type": "text"} for k, s, t in text]
        columns += [{"key": k, "label": s, "title": t, "type": "number"} for k, s, t in numbers]
        columns += [
            {
                "key": k,
                "label": short,
                "title": f"{long}; mean ± sample std over seeds",
                "type": "number",
            }
            for k, (short, long) in self.metrics.items()
        ]
        return columns

    def _row(self, stream: str, row: pd.Series, group: pd.DataFrame, columns: list) -> dict:
        records = [r for _, r in sorted(zip(group["seed"], group["record"], strict=True))]
        cells = []
        for column in columns:
            key = column["key"]
            if column["type"] == "text":
                text = row[key] or ("default" if key == "variant" else "")
                cells.append({"key": key, "value": row[key], "text": text})
            elif key in self.metrics:
                mean, std = row[f"{key}_mean"], row[f"{key}_std"]
                cells.append(
                    {
                        "key": key,
                        "value": csv_number(mean),
                        "text": mean_and_std(mean, std),
                        "std": csv_number(std),
                    }
                )
            else:
                cells.append({"key": key, "value": csv_number(row[key]), "text": f"{row[key]:,}"})
        curves = np.array(group.sort_values("seed")["curve"].tolist(), dtype=float)
        label = " / ".join(str(row[k]) for k in GROUP if row[k])
        matrices = [r["metrics"].get("accuracy_matrix") for r in records]
        accuracy = mean_matrix([_triangle(m) for m in matrices]) if all(matrices) else None
        compatibility = [r["metrics"].get("compatibility", {}).get("search_top1") for r in records]
        return {
            "slug": url_name(*(str(row[k]) for k in GROUP)),
            "strategy": row["strategy"],
            "backbone": row["backbone"],
            "variant": row["variant"],
            "label": label,
            "reference": row["kind"] == "reference",
            "kind": row["kind"],
            "description": self.descriptions.get(row["strategy"], ""),
            "search": " ".join(
                str(row[k]) for k in ("strategy", "kind", "backbone", "variant")
            ).lower(),
            "cells": cells,
            "last": mean_and_std(row["last_accuracy_mean"], row["last_accuracy_std"]),
            "curve_mean": curves.mean(axis=0).tolist(),
            "curve_std": curves.std(axis=0, ddof=1).tolist() if len(curves) > 1 else None,
            "heatmap": heatmap_svg(
                accuracy, f"{label}: accuracy matrix, mean over {len(records)} seed(s)"
            )
            if accuracy
            else None,
            "heatmap_small": heatmap_svg(accuracy, label, cell=16) if accuracy else None,
            "compatibility": heatmap_svg(
                mean_matrix([c["matrix"] for c in compatibility]),
                f"{label}: compatibility C[t][k], 1:N search top-1, mean over seeds",
            )
            if all(compatibility)
            else None,
            "provenance": provenance(records),
            "tuning": _tuning(records[0].get("tuning"), label),
            "seeds": [_seed_row(r) for r in records],
            "records": [record_text(r) for r in records],
        }


def _tuning(tuning: Mapping[str, Any] | None, label: str) -> dict[str, Any] | None:
    """A tuned row's study: its name, trials, space, and its history and parameter
    importances drawn from what the record keeps."""
    if not tuning:
        return None
    return {
        "study": tuning["study"],
        "trials": tuning["trials"],
        "objective": tuning["objective"],
        "space": tuning.get("space", {}),
        "history": history_svg(tuning.get("history", []), f"{label}: tuning history"),
        "importances": bars_svg(tuning.get("importances", {}), f"{label}: parameter importances"),
    }


def _triangle(matrix: list[list[float | None]]) -> list[list[float]]:
    """An accuracy matrix's lower triangle (it stores None above the diagonal)."""
    return [list(row[: t + 1]) for t, row in enumerate(matrix)]


def _seed_row(record: Mapping[str, Any]) -> dict[str, Any]:
    metrics, resources_ = record["metrics"], record.get("resources", {})
    return {
        "seed": record["seed"],
        "last": metrics.get("last_accuracy"),
        "average": metrics.get("average_incremental_accuracy"),
        "forgetting": metrics.get("forgetting_max"),
        "seconds": resources_.get("wall_seconds"),
        "memory": resources_.get("peak_rss_mib"),
        "threads": resources_.get("torch_threads"),
        "device": record.get("device"),
        "started": record.get("started"),
        "command": reproduce_command(record),
    }


def _distinct(records: list[Mapping[str, Any]], read) -> list[str]:
    """The distinct values of one field over a row's records, as text, in seed order."""
    values: list[str] = []
    for record in records:
        value = read(record)
        text = (
            "not recorded"
            if value is None
            else (value if isinstance(value, str) else json.dumps(value, sort_keys=True))
        )
        if text not in values:
            values.append(text)
    return values


def provenance(records: list[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """What a row was made from: one line per field, every distinct value over its seeds
    (one value when the seeds agree, as they should)."""
    fields = [
        ("clbench version", lambda r: r.get("versions", {}).get("clbench")),
        ("clbench commit", lambda r: r.get("versions", {}).get("clbench_commit")),
        ("stream", lambda r: r["stream"]),
        ("stream spec file", lambda r: r.get("stream_info", {}).get("spec_file")),
        (
            "classes per experience",
            lambda r: (
                " ".join(
                    str(len(c)) for c in r.get("stream_info", {}).get("classes_per_experience", [])
                )
                or None
            ),
        ),
        (
            "images (train / test)",
            lambda r: "{} / {}".format(
                r.get("stream_info", {}).get("train_images"),
                r.get("stream_info", {}).get("test_images"),
            ),
        ),
        ("resolution (px)", lambda r: r.get("stream_info", {}).get("resolution")),
        ("fit to the backbone's input", lambda r: r.get("stream_info", {}).get("fit")),
        ("split", lambda r: r.get("split")),
        ("backbone weights", lambda r: r.get("backbone_weights")),
        ("strategy provider", lambda r: r.get("strategy_provider")),
        ("config", lambda r: r.get("config")),
        ("official settings (stream family)", _official_settings),
        ("training augmentation", lambda r: _recipe(r, "augmentation", "none")),
        ("overrides (--set)", lambda r: r.get("overrides") or "none"),
        ("variant", lambda r: r.get("variant") or "default"),
        ("seeds", lambda _: None),  # filled below: one value for all records
        (
            "package versions",
            lambda r: {
                k: v
                for k, v in r.get("versions", {}).items()
                if k not in ("clbench", "clbench_commit")
            },
        ),
    ]
    lines = []
    for name, read in fields:
        if name == "seeds":
            lines.append((name, [" ".join(str(r["seed"]) for r in records)]))
        else:
            lines.append((name, _distinct(records, read)))
    return lines


def _recipe(record: dict[str, Any], key: str, absent: str) -> Any:
    """A field of the record's recipe; None (not recorded) for records older than it."""
    if "recipe" not in record:
        return None
    return record["recipe"].get(key) or absent


def _official_settings(record: dict[str, Any]) -> Any:
    source = _recipe(record, "official_source", "")
    if source is None:
        return None
    if not source:
        return "none: the strategy's defaults"
    return {"source": source, **record["recipe"].get("official_settings", {})}

"""``clbench evaluate``: one strategy over one stream, its record written and summarised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from cl_bench.cli.console import console, progress_tracker, stdout, table
from cl_bench.cli.options import (
    DEFAULT_BACKBONE,
    DEFAULT_SEED,
    DEFAULT_STREAM,
    SEED,
    checkpoint_options,
    discover_registry,
    folder_split_options,
    limit_per_class_option,
    log_option,
    no_cache_option,
    threads_option,
)
from cl_bench.cli.path_types import WritableFolder, nonempty_file
from cl_bench.data.streams import SPLITS
from cl_bench.experiments.runs import RunSpec, UnsavedRecordError, evaluate_run, write_run
from cl_bench.experiments.tracking import check_loggers
from cl_bench.results.comparison import committed_counterpart, compare, row_records
from cl_bench.results.records import read_record, record_text
from cl_bench.utils.config import parse_assignments
from cl_bench.utils.errors import RecordError
from cl_bench.utils.threads import DEFAULT_THREADS


@click.command()
@click.option("--strategy", required=True, help="Strategy name (see `clbench list strategies`).")
@click.option(
    "--stream",
    default=DEFAULT_STREAM,
    show_default=True,
    help="Stream name, a stream spec file (.yaml), or an image folder (train/ and test/, one "
    "folder per class).",
)
@click.option(
    "--backbone",
    default=DEFAULT_BACKBONE,
    show_default=True,
    help="Backbone name (see `clbench list backbones`), or timm:<architecture>.",
)
@folder_split_options
@click.option(
    "--seed",
    default=DEFAULT_SEED,
    show_default=True,
    type=SEED,
    help="Draws the class order and seeds training, as PyCIL/PILOT do.",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a strategy hyper-parameter; repeatable.",
)
@limit_per_class_option
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="test",
    show_default=True,
    help="Evaluate on the test split, or on 20% of each class's training images held out "
    "(for choosing hyper-parameters without touching the test split).",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    callback=nonempty_file,
    default=None,
    help="Local checkpoint file for the backbone instead of a download.",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, or auto.")
@threads_option
@click.option(
    "--output",
    type=WritableFolder(),
    default=Path("runs"),
    show_default=True,
    help="Folder of run records.",
)
@no_cache_option
@checkpoint_options
@click.option(
    "--save-model",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the trained strategy (its state and the record's provenance) to this "
    "file, for `clbench predict`.",
)
@log_option
def evaluate(
    strategy: str,
    stream: str,
    backbone: str,
    increment: int | None,
    initial_classes: int | None,
    seed: int,
    assignments: tuple[str, ...],
    limit_per_class: int | None,
    split: str,
    weights: Path | None,
    device: str,
    threads: int | None,
    output: Path,
    no_cache: bool | None,
    checkpoints: Path | None,
    no_resume: bool | None,
    keep_checkpoints: bool | None,
    save_model: Path | None,
    log: tuple[str, ...],
) -> None:
    """Run one strategy over a class-incremental stream and write its run record.

    A checkpoint is kept after every experience: the same command after a crash goes on
    from the last finished experience, and the record is the uninterrupted run's.
    """
    registry = discover_registry()
    spec = RunSpec(
        strategy=strategy,
        stream=stream,
        backbone=backbone,
        seed=seed,
        overrides=parse_assignments(assignments),
        limit_per_class=limit_per_class,
        split=split,
        weights=weights,
        device=device,
        threads=threads or DEFAULT_THREADS,
        use_cache=not no_cache,
        increment=increment,
        initial_classes=initial_classes,
        checkpoints=checkpoints,
        resume=not no_resume,
        keep_checkpoints=bool(keep_checkpoints),
        save_model=save_model,
        log=log,
    )
    check_loggers(registry, log)
    with progress_tracker() as track:
        record = evaluate_run(spec, registry, track, say=_say)
    try:
        path, heatmap = write_run(output, record)
    except UnsavedRecordError as error:
        _print_summary(record)
        if error.saved is None:
            print(record_text(record), end="")
        raise
    spec.discard_checkpoint()
    _print_summary(record)
    console.print(f"record written to {path}, compatibility heat map to {heatmap.name}",
                  soft_wrap=True, highlight=False, markup=False)  # fmt: skip
    if save_model is not None:
        console.print(f"model written to {save_model}", soft_wrap=True, highlight=False,
                      markup=False)  # fmt: skip
    _print_committed_comparison(record)


def _print_committed_comparison(record: dict[str, Any]) -> None:
    """Whether this run gave the committed record of the same run again
    (docs/reproducing.md): the first thing a newcomer checks."""
    committed = committed_counterpart(record)
    if committed is None:
        return
    try:
        recorded = read_record(committed)
    except RecordError as error:
        console.print(f"the committed record of this run is unreadable: {error}",
                      soft_wrap=True, highlight=False, markup=False)  # fmt: skip
        return
    result = compare(recorded, record, row_records(committed, recorded))
    colour = {"identical": "green", "close": "yellow", "differs": "red"}[result.verdict]
    console.print(
        f"[{colour}]{result.verdict}[/] {'from' if result.verdict == 'differs' else 'to'} "
        f"the committed record {escape(str(committed))}"
        + ("" if result.verdict == "identical" else f": {escape(result.summary())}"),
        soft_wrap=True, highlight=False,
    )  # fmt: skip
    if result.verdict != "identical" and result.environment:
        console.print("  environment: " + escape("; ".join(result.environment)),
                      soft_wrap=True, highlight=False)  # fmt: skip


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _print_summary(record: dict[str, Any]) -> None:
    metrics, resources = record["metrics"], record["resources"]
    steps = len(metrics["accuracy_curve"])
    matrix_rows = [
        [
            str(t),
            *(_pct(v, 1) for v in row[: t + 1]),
            *([""] * (steps - t - 1)),
            _pct(metrics["accuracy_curve"][t], 1),
        ]
        for t, row in enumerate(metrics["accuracy_matrix"])
    ]
    stdout.print(
        table(
            "accuracy a[t][j] (%) after training t (rows) on the test set of j (columns)",
            ["t", *(str(j) for j in range(steps)), "A_t"],
            matrix_rows,
        )
    )
    summary = [
        ("last accuracy A_T (%)", _pct(metrics["last_accuracy"])),
        ("average incremental accuracy (%)", _pct(metrics["average_incremental_accuracy"])),
        ("forgetting, max-based (PILOT/Mammoth) (%)", _pct(metrics["forgetting_max"])),
        ("forgetting vs initial (Avalanche) (%)", _pct(metrics["forgetting_initial"])),
        ("backward transfer BWT (%)", _pct(metrics["bwt"])),
        *_compatibility_rows(metrics.get("compatibility", {})),
        *_published_rows(record["stream_info"].get("published", [])),
        *_recipe_rows(record.get("recipe")),
        ("wall time (s)", f"{resources['wall_seconds']:.1f}"),
        ("peak memory (RSS, MiB)", f"{resources['peak_rss_mib']:.0f}"),
        (
            "trainable / total parameters",
            f"{resources['trainable_parameters']:,} / {resources['total_parameters']:,}",
        ),
        (
            "rehearsal memory (samples of past experiences)",
            f"{resources.get('rehearsal_samples', 0):,}",
        ),
    ]
    title = (
        f"{record['strategy']} on {record['stream']} with {record['backbone']}, "
        f"seed {record['seed']}" + (f" [{record['variant']}]" if record["variant"] else "")
    )
    stdout.print(table(title, ["metric", "value"], summary))
    if record.get("strategy_report"):
        rows = [(key.replace("_", " "), _render(value))
                for key, value in record["strategy_report"].items()]  # fmt: skip
        stdout.print(table(f"{record['strategy']}: strategy report", ["item", "value"], rows,
                           numeric=False))  # fmt: skip


def _published_rows(published: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The papers' figures for this strategy in this stream's setting, to compare against."""
    return [
        (
            f"published: {entry['backbone']} ({entry['source']})",
            f"{_pct(entry['average'])} avg / {_pct(entry['last'])} last",
        )
        for entry in published
    ]


def _recipe_rows(recipe: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Where the run's settings come from, when the stream's family has official ones,
    and whether training images were augmented (the strategy's declared transform)."""
    if recipe is None:
        return []
    rows = []
    if recipe["official_source"]:
        rows.append(("official settings", recipe["official_source"]))
    if recipe["augmentation"]:
        rows.append(("training augmentation", recipe["augmentation"]))
    return rows


def _compatibility_rows(compatibility: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for score, name in (("search_top1", "1:N search top-1"), ("map", "instance mAP")):
        if score in compatibility:
            summary = compatibility[score]
            ac = "n/a" if summary["ac"] is None else f"{summary['ac']:.2f}"
            ecc = "".join({True: "y", False: "n", None: "?"}[h] for h in summary["ecc"]) or "-"
            am = _pct(summary["am"])
            rows.append((f"compatibility AC (0-1) / AM (%), {name}", f"{ac} / {am}"))
            rows.append((f"ECC per update, {name}", ecc))
    return rows


def _render(value: Any) -> str:
    """Compact text for a JSON value: lists of rows become ``1 1 1 | 2 2 2``."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_render(item)}" for key, item in value.items())
    if isinstance(value, list):
        nested = any(isinstance(item, list | dict) for item in value)
        return (" | " if nested else " ").join(_render(item) for item in value) or "none"
    return str(value)


def _say(message: str) -> None:
    console.print(message, soft_wrap=True, highlight=False, markup=False)

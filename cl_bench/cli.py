"""The ``clbench`` command line: list plugins, evaluate a strategy, build leaderboards."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from cl_bench import __version__
from cl_bench.backbones.base import BackboneOptions
from cl_bench.config import parse_assignments
from cl_bench.console import console, progress_tracker, stdout, table
from cl_bench.datasources import DataContext
from cl_bench.errors import ClbenchError, RecordError
from cl_bench.evaluation import resolve_backbone, resolve_stream
from cl_bench.executors import make_executor
from cl_bench.feature_store import FeatureStore
from cl_bench.grid import checked_runs, make_grid, read_grid_file
from cl_bench.leaderboard import write_leaderboards
from cl_bench.paths import CACHE_ENV, DATA_ENV, cache_dir, data_root
from cl_bench.registry import Registry
from cl_bench.report import write_reports
from cl_bench.runs import RunSpec, evaluate_run, write_run
from cl_bench.streams import SPLITS, prepare
from cl_bench.sweep import Outcome, outcome_table, run_sweep

DEFAULT_STREAM = "offline-mix"
DEFAULT_BACKBONE = "efficientnet_lite0"
DEFAULT_SEED = 1993


def _registry() -> Registry:
    registry = Registry.discover()
    for problem in registry.problems:
        console.print(f"[yellow]warning:[/] {problem}")
    return registry


# Options that `evaluate` and `sweep` take alike. Unset values are None, so that in a
# sweep a grid file's value stands unless the flag is given.
_limit_per_class_option = click.option(
    "--limit-per-class",
    type=click.IntRange(min=1),
    default=None,
    help="Use at most N training images per class (quick runs).",
)
_no_cache_option = click.option(
    "--no-cache",
    is_flag=True,
    default=None,
    help="Neither read nor write clbench's caches (prepared streams, frozen features).",
)


def _folder_split_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--increment`` and ``--initial-classes``: how an image folder given as a stream
    is split into experiences, the same for one run and for a sweep."""
    command = click.option(
        "--initial-classes", type=click.IntRange(min=0), default=None,
        help="Classes of the first experience, for image folder streams. [default: increment]",
    )(command)  # fmt: skip
    return click.option(
        "--increment", type=click.IntRange(min=1), default=None,
        help="Classes per experience, for image folder streams. [default: 10]",
    )(command)  # fmt: skip


@click.group()
@click.version_option(__version__, prog_name="clbench")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help=f"Where prepared streams and frozen features are cached (default: ${CACHE_ENV} "
    "or the user cache directory).",
)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    default=None,
    help=f"Folder of the data sets you obtain yourself (CIFAR-100, ImageNet-R, ...; default: "
    f"${DATA_ENV} or ./data).",
)
def cli(cache_dir: Path | None, data_root: Path | None) -> None:
    """Class-incremental continual-learning benchmarks on frozen pretrained models."""
    if cache_dir is not None:
        os.environ[CACHE_ENV] = str(cache_dir)
    if data_root is not None:
        os.environ[DATA_ENV] = str(data_root.absolute())


@cli.command("list")
@click.argument("kind", type=click.Choice(["strategies", "streams", "backbones"]))
def list_command(kind: str) -> None:
    """List the installed strategies, streams or backbones and who provides them."""
    registry = _registry()
    entries = getattr(registry, kind)
    rows = [(name, p.distribution, p.spec.description) for name, p in sorted(entries.items())]
    stdout.print(table(kind, ["name", "distribution", "description"], rows, numeric=False))


@cli.command()
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
@_folder_split_options
@click.option(
    "--seed",
    default=DEFAULT_SEED,
    show_default=True,
    type=int,
    help="Draws the class order and seeds training, as PyCIL/PILOT do.",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a strategy hyper-parameter; repeatable.",
)
@_limit_per_class_option
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
    type=click.Path(path_type=Path),
    default=None,
    help="Local checkpoint file for the backbone instead of a download.",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, or auto.")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Folder of run records.",
)
@_no_cache_option
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
    output: Path,
    no_cache: bool | None,
) -> None:
    """Run one strategy over a class-incremental stream and write its run record."""
    registry = _registry()
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
        use_cache=not no_cache,
        increment=increment,
        initial_classes=initial_classes,
    )
    with progress_tracker() as track:
        record = evaluate_run(spec, registry, track)
    path, heatmap = write_run(output, record)
    _print_summary(record)
    console.print(f"record written to {path}, compatibility heat map to {heatmap.name}",
                  soft_wrap=True, highlight=False)  # fmt: skip


@cli.command()
@click.option(
    "--grid",
    "grid_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="YAML file with the keys strategy, stream, backbone, seed (each a name or a list), "
    "set, increment, initial-classes, limit-per-class, split, weights, device, cache, output, "
    "leaderboards; flags given override it.",
)
@click.option("--strategy", "strategies", multiple=True, help="Strategy name; repeatable.")
@click.option(
    "--stream",
    "streams",
    multiple=True,
    help=f"Stream name, spec file or image folder; repeatable. [default: {DEFAULT_STREAM}]",
)
@click.option(
    "--backbone",
    "backbones",
    multiple=True,
    help=f"Backbone name or timm:<architecture>; repeatable. [default: {DEFAULT_BACKBONE}]",
)
@click.option(
    "--seed", "seeds", multiple=True, type=int, help=f"Seed; repeatable. [default: {DEFAULT_SEED}]"
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a hyper-parameter in every run; repeatable.",
)
@_folder_split_options
@_limit_per_class_option
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default=None,
    help="Evaluate on the test split or the validation split. [default: test]",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Local checkpoint file for the (one) backbone instead of a download.",
)
@click.option("--device", default=None, help="cpu, cuda, cuda:1, or auto. [default: auto]")
@_no_cache_option
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of run records. [default: runs]",
)
@click.option(
    "--leaderboards",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder the leaderboards are regenerated into at the end. [default: leaderboards]",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="A process pool on this machine, or Ray tasks.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Runs at a time (local), or CPUs of a local Ray instance. [default: the number of "
    "CPUs, divided by --threads-per-run for the local pool]",
)
@click.option(
    "--threads-per-run",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Torch threads of each run. Trained strategies' numbers depend on the thread "
    "count: to reproduce records made by `clbench evaluate`, use the threads they state.",
)
@click.option(
    "--ray-address",
    envvar="RAY_ADDRESS",
    show_envvar=True,
    default=None,
    help="Ray cluster to connect to; without it a local Ray instance is started.",
)
def sweep(
    grid_file: Path | None,
    strategies: tuple[str, ...],
    streams: tuple[str, ...],
    backbones: tuple[str, ...],
    seeds: tuple[int, ...],
    assignments: tuple[str, ...],
    increment: int | None,
    initial_classes: int | None,
    limit_per_class: int | None,
    split: str | None,
    weights: Path | None,
    device: str | None,
    no_cache: bool | None,
    output: Path | None,
    leaderboards: Path | None,
    executor: str,
    workers: int | None,
    threads_per_run: int,
    ray_address: str | None,
) -> None:
    """Run every strategy x stream x backbone x seed, then regenerate the leaderboards.

    Runs whose record exists are skipped, so rerunning resumes; failed runs are retried.
    """
    registry = _registry()
    flags = {
        "strategy": strategies,
        "stream": streams,
        "backbone": backbones,
        "seed": seeds,
        "set": assignments,
        "increment": increment,
        "initial-classes": initial_classes,
        "limit-per-class": limit_per_class,
        "split": split,
        "weights": weights,
        "device": device,
        "cache": False if no_cache else None,
        "output": output,
        "leaderboards": leaderboards,
    }
    defaults = {"stream": DEFAULT_STREAM, "backbone": DEFAULT_BACKBONE, "seed": DEFAULT_SEED}
    grid = make_grid(read_grid_file(grid_file) if grid_file else {}, flags, defaults)
    runs = checked_runs(grid.runs(), registry)
    pool = make_executor(
        executor, workers=workers, ray_address=ray_address, threads_per_run=threads_per_run
    )
    outcomes: list[Outcome] = []
    try:
        swept = run_sweep(runs, grid.output, pool, threads_per_run)
        with progress_tracker() as track, closing(swept) as done:
            for outcome in track(done, total=len(runs), description="runs"):
                outcomes.append(outcome)
                console.print(_outcome_line(outcome), soft_wrap=True, highlight=False)
    except KeyboardInterrupt:
        console.print(
            "[red]interrupted[/]: workers stopped; finished runs are recorded and no "
            "record is half-written. Run the same command again to resume: runs "
            "with a record are skipped."
        )
        raise SystemExit(130) from None
    outcomes.sort(key=lambda outcome: runs.index(outcome.spec))
    stdout.print(outcome_table(outcomes))
    failed = sum(outcome.status == "failed" for outcome in outcomes)
    try:
        write_leaderboards(grid.output, grid.leaderboards)
        console.print(
            f"leaderboards regenerated in {grid.leaderboards}", soft_wrap=True, highlight=False
        )
    except RecordError as error:
        if not failed:
            raise
        console.print(f"leaderboards not regenerated: {error}", soft_wrap=True, markup=False)
    if failed:
        console.print(
            f"[red]{failed} of {len(runs)} runs failed[/]; each left a .failed.json "
            "note beside its record's path. Run the same command again to retry them."
        )
        raise SystemExit(1)


def _outcome_line(outcome: Outcome) -> str:
    label = escape(outcome.spec.label)
    if outcome.status == "skipped":
        return f"skipped {label}: its record exists ({escape(str(outcome.path))})"
    if outcome.status == "ran":
        return f"ran {label} in {outcome.seconds:.1f} s"
    error, note = escape(outcome.error or ""), escape(str(outcome.path))
    return f"[red]failed[/] {label}: {error} (details in {note})"


def _records_options(out_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--runs`` (records to read) and ``--out`` (where to write), as the commands that
    regenerate files from records share them."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        folder = click.Path(path_type=Path)
        command = click.option("--out", type=folder, default=Path("leaderboards"),
                               show_default=True, help=out_help)(command)  # fmt: skip
        return click.option("--runs", type=folder, default=Path("runs"), show_default=True,
                            help="Folder of run records to read.")(command)  # fmt: skip

    return decorate


@cli.command()
@_records_options("Folder to write the leaderboards into.")
def leaderboard(runs: Path, out: Path) -> None:
    """Regenerate CSV and Markdown leaderboards (and accuracy plots) from run records."""
    for path in write_leaderboards(runs, out):
        console.print(f"wrote {path}", soft_wrap=True, highlight=False)


@cli.command()
@_records_options("Folder to write the leaderboards and reports into.")
def report(runs: Path, out: Path) -> None:
    """Leaderboards, and per stream a report page: table, curves, compatibility heat maps."""
    for path in write_reports(runs, out):
        console.print(f"wrote {path}", soft_wrap=True, highlight=False)


@cli.command("prepare")
@click.option("--stream", required=True, help="Stream name, spec file or image folder.")
@click.option(
    "--download",
    is_flag=True,
    help="Download a missing data set where clbench knows how (CIFAR-100); needs network.",
)
@click.option(
    "--backbone",
    default=DEFAULT_BACKBONE,
    show_default=True,
    help="Photos are cropped as this backbone's pretrained config says; prepare for the "
    "backbone you will run.",
)
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Local checkpoint of the backbone.")  # fmt: skip
@_folder_split_options
def prepare_command(
    stream: str,
    download: bool,
    backbone: str,
    weights: Path | None,
    increment: int | None,
    initial_classes: int | None,
) -> None:
    """Check a stream's data, decode and cache its images (once, before runs or sweeps).

    The cache holds the images, not the split into experiences: one preparation serves
    every increment of the same data.
    """
    registry = _registry()
    spec = resolve_stream(registry, stream, increment, initial_classes)
    if spec.fit == "crop":  # the crop depends on the backbone (as in `clbench evaluate`)
        model = resolve_backbone(registry, backbone).load(
            BackboneOptions(weights=weights, image_size=spec.resolution)
        )
        spec = spec.fitted_to(model.input_size, model.crop_pct)
    with progress_tracker() as track:
        data = prepare(spec, track=track, context=DataContext(data_root(), download=download))
    rows = [
        ("classes", f"{len(data.class_names):,}"),
        ("training images", f"{int((~data.is_test).sum()):,}"),
        ("test images", f"{int(data.is_test.sum()):,}"),
        (
            "resolution",
            f"{spec.resolution} px ({spec.fit}"
            + (f", crop {spec.crop_pct})" if spec.fit == "crop" else ")"),
        ),
    ]
    stdout.print(table(f"stream {spec.name}", ["item", "value"], rows))


@cli.group()
def cache() -> None:
    """Show or free the on-disk cache of prepared streams and frozen features."""


@cache.command("info")
def cache_info() -> None:
    """Where the cache is, how many entries it holds and their size."""
    streams = _stream_cache_files()
    features = FeatureStore().info()
    rows = [
        ("frozen features", str(features.root), features.entries, _mib(features.bytes)),
        ("prepared streams", str(cache_dir() / "streams"), len(streams),
         _mib(sum(p.stat().st_size for p in streams))),
    ]  # fmt: skip
    stdout.print(table("clbench cache", ["part", "location", "entries", "size"], rows))


@cache.command("clear")
def cache_clear() -> None:
    """Delete every cache entry; the next runs recompute what they need."""
    removed = FeatureStore().clear()
    streams = _stream_cache_files()
    for path in [*streams, *(cache_dir() / "streams").glob("*.pt.lock")]:
        path.unlink(missing_ok=True)
    console.print(f"removed {removed} feature entries and {len(streams)} prepared streams")


def _stream_cache_files() -> list[Path]:
    return sorted((cache_dir() / "streams").glob("*.pt"))


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


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


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        console.print("[red]interrupted[/]; no record was written")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]; no record was written")
        sys.exit(130)
    except ClbenchError as error:
        console.print(f"[red]error:[/] {escape(str(error))}", highlight=False)
        sys.exit(2)

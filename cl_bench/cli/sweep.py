"""``clbench sweep``: a grid of runs on a local process pool or Ray, then leaderboards."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

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
    strategy_descriptions,
    threads_option,
)
from cl_bench.cli.path_types import WritableFolder, nonempty_file
from cl_bench.data.streams import SPLITS
from cl_bench.experiments.executors import make_executor
from cl_bench.experiments.grid import checked_runs, make_grid, read_grid_file
from cl_bench.experiments.runs import RunSpec
from cl_bench.experiments.sweep import Outcome, run_sweep
from cl_bench.experiments.tracking import check_loggers
from cl_bench.results.leaderboard import write_leaderboards
from cl_bench.results.records import iter_records
from cl_bench.utils.errors import RecordError


@click.command()
@click.option(
    "--grid",
    "grid_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="YAML file with the keys strategy, stream, backbone, seed (each a name or a list), "
    "set, increment, initial-classes, limit-per-class, split, weights, device, threads, "
    "gpus-per-run, log, cache, checkpoints, resume, keep-checkpoints, "
    "output, leaderboards; flags given override it.",
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
    "--seed", "seeds", multiple=True, type=SEED, help=f"Seed; repeatable. [default: {DEFAULT_SEED}]"
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a hyper-parameter in every run; repeatable.",
)
@folder_split_options
@limit_per_class_option
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default=None,
    help="Evaluate on the test split or the validation split. [default: test]",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    callback=nonempty_file,
    default=None,
    help="Local checkpoint file for the (one) backbone instead of a download.",
)
@click.option("--device", default=None, help="cpu, cuda, cuda:1, or auto. [default: auto]")
@no_cache_option
@checkpoint_options
@click.option(
    "--output",
    type=WritableFolder(),
    default=None,
    help="Folder of run records. [default: runs]",
)
@click.option(
    "--leaderboards",
    type=WritableFolder(),
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
    "CPUs, divided by --threads for the local pool; with --gpus-per-run, as many as fit on "
    "the GPUs]",
)
@threads_option
@click.option(
    "--gpus-per-run",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="GPUs each run gets: a share of one (0.5 packs two runs a GPU) or whole GPUs. "
    "Ray assigns them; the local pool pins its workers to this machine's GPUs round-robin "
    "and runs as many at once as fit. [default: 1 for --device cuda, else none]",
)
@log_option
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
    checkpoints: Path | None,
    no_resume: bool | None,
    keep_checkpoints: bool | None,
    output: Path | None,
    leaderboards: Path | None,
    executor: str,
    workers: int | None,
    threads: int | None,
    gpus_per_run: float | None,
    log: tuple[str, ...],
    ray_address: str | None,
) -> None:
    """Run every strategy x stream x backbone x seed, then regenerate the leaderboards.

    Runs whose record exists are skipped, so rerunning resumes; failed runs are retried.
    """
    registry = discover_registry()
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
        "threads": threads,
        "gpus-per-run": gpus_per_run,
        "log": log,
        "cache": False if no_cache else None,
        "checkpoints": checkpoints,
        "resume": False if no_resume else None,
        "keep-checkpoints": True if keep_checkpoints else None,
        "output": output,
        "leaderboards": leaderboards,
    }
    defaults = {"stream": DEFAULT_STREAM, "backbone": DEFAULT_BACKBONE, "seed": DEFAULT_SEED}
    grid = make_grid(read_grid_file(grid_file) if grid_file else {}, flags, defaults)
    runs = checked_runs(grid.runs(), registry, devices_here=executor == "local")
    check_loggers(registry, grid.log)
    if grid.output.is_dir():  # the leaderboards at the end read every record there: a bad
        for _ in iter_records(grid.output):  # one is refused now, not after hours of runs
            pass
    pool = make_executor(executor, workers=workers, ray_address=ray_address,
                         threads_per_run=grid.threads, gpus_per_run=grid.gpus_per_run)  # fmt: skip
    outcomes: list[Outcome] = []

    def say_retry(spec: RunSpec, why: str) -> None:
        console.print(f"[yellow]retrying[/] {escape(spec.label)}: its worker was lost "
                      f"({escape(why)})", soft_wrap=True, highlight=False)  # fmt: skip

    try:
        swept = run_sweep(runs, grid.output, pool, on_retry=say_retry)
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
        write_leaderboards(grid.output, grid.leaderboards,
                           descriptions=strategy_descriptions(registry))  # fmt: skip
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
    retries = f" (after {outcome.retries} retr{'y' if outcome.retries == 1 else 'ies'})"
    retries = retries if outcome.retries else ""
    if outcome.status == "ran":
        return f"ran {label} in {outcome.seconds:.1f} s{retries}"
    error, note = escape(outcome.error or ""), escape(str(outcome.path))
    return f"[red]failed[/] {label}{retries}: {error} (details in {note})"


def outcome_table(outcomes: Sequence[Outcome]) -> Table:
    """One row per run, in grid order: ran, skipped, or failed with its error."""
    rows = [
        (
            o.spec.strategy,
            o.spec.stream,
            o.spec.backbone,
            o.spec.seed,
            o.spec.variant or "default",
            o.status,
            "" if o.seconds is None else f"{o.seconds:.1f}",
            o.error if o.status == "failed" else str(o.path),
        )
        for o in outcomes
    ]
    counts = {
        status: sum(o.status == status for o in outcomes) for status in ("ran", "skipped", "failed")
    }
    title = "sweep: " + ", ".join(f"{n} {status}" for status, n in counts.items())
    if retried := sum(o.retries for o in outcomes):
        title += f", {retried} retried after a lost worker"
    columns = [
        "strategy",
        "stream",
        "backbone",
        "seed",
        "variant",
        "outcome",
        "seconds",
        "record, or error",
    ]
    return table(title, columns, rows, numeric=False)

"""``clbench verify``: rerun records as they describe themselves and say whether their
numbers come out again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from rich.markup import escape

from cl_bench.cli.console import console, progress_tracker, stdout, table
from cl_bench.cli.options import discover_registry, log_option
from cl_bench.experiments.executors import make_executor
from cl_bench.experiments.tracking import check_loggers
from cl_bench.experiments.verify import Verification, exit_status, plan, record_files, sample
from cl_bench.experiments.verify import verify as verify_targets

COLOURS = {"identical": "green", "close": "yellow", "differs": "red", "cannot rerun": "red"}


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--sample",
    "sample_size",
    type=click.IntRange(min=1),
    default=None,
    help="Rerun N records drawn at random (seeded by --sample-seed). [default: all]",
)
@click.option(
    "--sample-seed", type=click.IntRange(min=0), default=0, show_default=True,
    help="Seed of the --sample draw: the same seed draws the same records.",
)  # fmt: skip
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Reruns at a time, each in a fresh process. [default: the CPUs divided by the "
    "records' largest thread count]",
)
@log_option
def verify(
    paths: tuple[Path, ...],
    sample_size: int | None,
    sample_seed: int,
    workers: int | None,
    log: tuple[str, ...],
) -> None:
    """Rerun run records exactly as they describe their runs and compare the numbers.

    PATHS are record files or folders of records. Each record gets one verdict:
    identical, close (within its row's seed spread, docs/reproducing.md), or
    differs (with what moved, and every difference of environment). Exit status: 0 when
    nothing differs, 1 when something does, 2 when a record cannot be rerun.
    """
    registry = discover_registry()
    files = sample(record_files(list(paths)), sample_size, sample_seed)
    check_loggers(registry, log)
    targets = [dataclasses.replace(t, spec=dataclasses.replace(t.spec, log=log, group="verify"))
               for t in plan(files, registry)]  # fmt: skip
    threads = max(target.spec.threads for target in targets)
    executor = make_executor("local", workers=workers, threads_per_run=threads)
    console.print(f"rerunning {len(targets)} records in a temporary folder",
                  highlight=False)  # fmt: skip
    results: list[Verification] = []
    with progress_tracker() as track:
        for verification in verify_targets(targets, executor, track):
            results.append(verification)
            console.print(_line(verification), soft_wrap=True, highlight=False)
    results.sort(key=lambda v: files.index(v.target.path))
    stdout.print(_table(results))
    for verification in results:
        _print_details(verification)
    raise SystemExit(exit_status(results))


def _name(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _line(verification: Verification) -> str:
    colour = COLOURS[verification.status]
    return f"[{colour}]{verification.status}[/] {escape(_name(verification.target.path))}"


def _table(results: list[Verification]) -> object:
    rows = []
    for v in results:
        record = v.target.record
        detail = v.message if v.comparison is None else v.comparison.summary()
        rows.append((record["strategy"], record["variant"] or "default", record["seed"],
                     v.status, detail))  # fmt: skip
    counts = {s: sum(v.status == s for v in results) for s in COLOURS}
    title = "verify: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    columns = ["strategy", "variant", "seed", "verdict", "what moved"]
    return table(title, columns, rows, numeric=False)


def _print_details(verification: Verification) -> None:
    """For a record that is not identical: every difference of environment and setting
    the two records show, which is where a cause is usually found."""
    comparison = verification.comparison
    if comparison is None or comparison.verdict == "identical":
        return
    facts = [*comparison.environment, *(f"config {c}" for c in comparison.config)]
    if not facts:
        facts = ["no difference of environment or settings recorded"]
    console.print(
        f"{escape(_name(verification.target.path))} ({comparison.verdict}), recorded -> rerun:",
        soft_wrap=True,
        highlight=False,
    )
    for fact in facts:
        console.print(f"  {escape(fact)}", soft_wrap=True, highlight=False)

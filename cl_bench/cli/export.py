"""``clbench export``: run records into an experiment tracker."""

from __future__ import annotations

from pathlib import Path

import click

from cl_bench.cli.console import console, progress_tracker
from cl_bench.cli.options import discover_registry
from cl_bench.experiments.export import export_records
from cl_bench.experiments.tracking import check_loggers, parse_choice
from cl_bench.results.records import iter_records


@click.command()
@click.option("--to", "tracker", required=True, metavar="NAME[:ARG]",
              help="The tracker: mlflow[:TRACKING_URI], tensorboard[:DIR], wandb[:PROJECT], "
              "or a logger plugin's name.")  # fmt: skip
@click.argument("target", required=False)
@click.option("--runs", type=click.Path(path_type=Path, exists=True, file_okay=False),
              required=True, help="Folder of run records (e.g. leaderboards/runs).")  # fmt: skip
def export(tracker: str, target: str | None, runs: Path) -> None:
    """Put finished run records into an experiment tracker as finished runs.

    TARGET, if given, is the tracker's argument (``--to mlflow http://host:5000`` is
    ``--to mlflow:http://host:5000``). Records the tracker already holds are skipped.
    """
    if target is not None:
        tracker = f"{parse_choice(tracker)[0]}:{target}"
    registry = discover_registry()
    check_loggers(registry, [tracker])
    total = sum(1 for _ in iter_records(runs))  # every record is checked before any export
    counts = {"exported": 0, "held": 0}
    with progress_tracker() as track:
        exported = export_records(registry, tracker, runs, warn=console.print)
        for _, outcome in track(exported, total=total, description="records"):
            counts[outcome] += 1
    console.print(f"{counts['exported']} records exported to {tracker}, {counts['held']} "
                  "already there", soft_wrap=True, highlight=False, markup=False)  # fmt: skip

"""``clbench report``: leaderboards plus a report page and heat maps per stream."""

from __future__ import annotations

from pathlib import Path

import click

from cl_bench.cli.console import console
from cl_bench.cli.options import discover_registry, records_options, strategy_descriptions
from cl_bench.results.report import write_reports


@click.command()
@records_options("Folder to write the leaderboards and reports into.")
def report(runs: Path, out: Path, html: Path | None) -> None:
    """Leaderboards, and per stream a report page: table, curves, compatibility heat maps."""
    descriptions = strategy_descriptions(discover_registry())
    for path in write_reports(runs, out, html, descriptions):
        console.print(f"wrote {path}", soft_wrap=True, highlight=False, markup=False)

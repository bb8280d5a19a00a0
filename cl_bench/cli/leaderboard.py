"""``clbench leaderboard``: leaderboards regenerated from run records."""

from __future__ import annotations

from pathlib import Path

import click

from cl_bench.cli.console import console
from cl_bench.cli.options import discover_registry, records_options, strategy_descriptions
from cl_bench.results.leaderboard import write_leaderboards


@click.command()
@records_options("Folder to write the leaderboards into.")
def leaderboard(runs: Path, out: Path, html: Path | None) -> None:
    """Regenerate the leaderboards from run records: CSV, Markdown, accuracy plots and the
    HTML site."""
    descriptions = strategy_descriptions(discover_registry())
    for path in write_leaderboards(runs, out, html, descriptions):
        console.print(f"wrote {path}", soft_wrap=True, highlight=False, markup=False)

"""``clbench list``: the installed strategies, streams or backbones."""

from __future__ import annotations

import click

from cl_bench.cli.console import stdout, table
from cl_bench.cli.options import discover_registry


@click.command("list")
@click.argument("kind", type=click.Choice(["strategies", "streams", "backbones"]))
def list_command(kind: str) -> None:
    """List the installed strategies, streams or backbones and who provides them."""
    registry = discover_registry()
    entries = getattr(registry, kind)
    rows = [(name, p.distribution, p.spec.description) for name, p in sorted(entries.items())]
    stdout.print(table(kind, ["name", "distribution", "description"], rows, numeric=False))

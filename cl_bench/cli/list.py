"""``clbench list``: the installed strategies, streams or backbones."""

from __future__ import annotations

import dataclasses

import click

from cl_bench.cli.console import stdout, table
from cl_bench.cli.options import discover_registry
from cl_bench.utils.config import build_config, yaml_text
from cl_bench.utils.errors import ConfigError


@click.command("list")
@click.argument("kind", type=click.Choice(["strategies", "streams", "backbones"]))
@click.option("--keys", is_flag=True,
              help="Strategies: list every --set key with its default instead.")  # fmt: skip
def list_command(kind: str, keys: bool) -> None:
    """List the installed strategies, streams or backbones and who provides them."""
    registry = discover_registry()
    entries = sorted(getattr(registry, kind).items())
    if keys and kind == "strategies":
        rows = [row for name, provided in entries for row in key_rows(name, provided.spec.strategy)]
        stdout.print(table("--set keys", ["strategy", "key", "default"], rows, numeric=False))
        return
    rows = [(name, p.distribution, p.spec.description) for name, p in entries]
    rows += [(f"{p.plugin} (broken)", p.distribution, p.error) for p in registry.problems]
    stdout.print(table(kind, ["name", "distribution", "description"], rows, numeric=False))


def key_rows(name: str, strategy: type) -> list[tuple[str, str, str]]:
    """One ``(strategy, key, default)`` row per Config field, or one saying why none."""
    try:
        config = strategy.Config
    except ConfigError as error:
        return [(name, "-", str(error))]
    defaults = build_config(config, {})
    fields = dataclasses.fields(config)
    if not fields:
        return [(name, "-", "no keys")]
    return [(name if i == 0 else "", field.name, yaml_text(getattr(defaults, field.name)))
            for i, field in enumerate(fields)]  # fmt: skip

"""``clbench list``: the installed strategies, streams or backbones."""

from __future__ import annotations

import dataclasses

import click

from cl_bench.cli.console import stdout, table
from cl_bench.cli.options import discover_registry
from cl_bench.training.strategy import StrategySpec
from cl_bench.utils.config import build_config, yaml_text
from cl_bench.utils.errors import ConfigError


@click.command("list")
@click.argument("kind", type=click.Choice(["strategies", "streams", "backbones"]))
@click.option("--keys", is_flag=True,
              help="Strategies: list every --set key with its default instead.")  # fmt: skip
@click.option("--official", is_flag=True,
              help="Strategies: list the official settings per stream family, with "
                   "their source, instead.")  # fmt: skip
def list_command(kind: str, keys: bool, official: bool) -> None:
    """List the installed strategies, streams or backbones and who provides them."""
    registry = discover_registry()
    entries = sorted(getattr(registry, kind).items())
    if keys and kind == "strategies":
        rows = [row for name, provided in entries for row in key_rows(name, provided.spec)]
        columns = ["strategy", "key", "default", "tuned within (clbench tune)"]
        stdout.print(table("--set keys", columns, rows, numeric=False))
        return
    if official and kind == "strategies":
        rows = [row for name, provided in entries for row in official_rows(name, provided.spec)]
        columns = ["strategy", "stream family", "settings", "source"]
        stdout.print(table("official settings", columns, rows, numeric=False))
        stdout.print("Other strategies and families (offline-mix, image folders): the "
                     "strategy's Config defaults (`clbench list strategies --keys`).")  # fmt: skip
        return
    columns = ["name", "distribution", "description"]
    rows = [(name, p.distribution, p.spec.description) for name, p in entries]
    if kind == "strategies":
        columns.append("official settings for")
        rows = [(*row, _families(p.spec)) for row, (_, p) in zip(rows, entries, strict=True)]
    if kind == "streams":
        columns.append("family")
        rows = [(*row, p.spec.family or "-") for row, (_, p) in zip(rows, entries, strict=True)]
    rows += [(f"{p.plugin} (broken)", p.distribution, p.error, *[""] * (len(columns) - 3))
             for p in registry.problems]  # fmt: skip
    stdout.print(table(kind, columns, rows, numeric=False))


def _families(spec: StrategySpec) -> str:
    return ", ".join(entry.family for entry in spec.official) or "-"


def official_rows(name: str, spec: StrategySpec) -> list[tuple[str, str, str, str]]:
    """One row per stream family the strategy's official code has settings for."""
    return [(name, entry.family,
             " ".join(f"{k}={yaml_text(v)}" for k, v in entry.settings.items()) or "(defaults)",
             entry.source) for entry in spec.official]  # fmt: skip


def key_rows(name: str, spec: StrategySpec) -> list[tuple[str, str, str, str]]:
    """One ``(strategy, key, default, search range)`` row per Config field, or one
    saying why none."""
    try:
        config = spec.strategy.Config
    except ConfigError as error:
        return [(name, "-", str(error), "")]
    defaults = build_config(config, {})
    fields = dataclasses.fields(config)
    if not fields:
        return [(name, "-", "no keys", "")]
    return [(name if i == 0 else "", field.name, yaml_text(getattr(defaults, field.name)),
             spec.search[field.name].describe() if field.name in spec.search else "")
            for i, field in enumerate(fields)]  # fmt: skip

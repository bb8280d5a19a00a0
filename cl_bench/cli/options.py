"""Options and helpers that several commands share, defined once so that ``evaluate``
and ``sweep`` (and ``leaderboard`` and ``report``) take them alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from cl_bench.cli.console import console
from cl_bench.cli.path_types import WritableFolder
from cl_bench.training.registry import Registry

DEFAULT_STREAM = "offline-mix"
DEFAULT_BACKBONE = "efficientnet_lite0"
DEFAULT_SEED = 1993
# numpy's seeds (class orders are drawn with them) are 32-bit unsigned
SEED = click.IntRange(0, 2**32 - 1)


def strategy_descriptions(registry: Registry) -> dict[str, str]:
    """Each installed strategy's one-line description, for pages that show them."""
    return {name: provided.spec.description for name, provided in registry.strategies.items()}


def discover_registry() -> Registry:
    """The installed plugins; the ones that failed to load are shown as warnings."""
    registry = Registry.discover()
    for problem in registry.problems:
        console.print(f"[yellow]warning:[/] {escape(str(problem))}")
    return registry


# Options that `evaluate` and `sweep` take alike. Unset values are None, so that in a
# sweep a grid file's value stands unless the flag is given.
limit_per_class_option = click.option(
    "--limit-per-class",
    type=click.IntRange(min=1),
    default=None,
    help="Use at most N training images per class (quick runs).",
)
threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch threads of each run. Trained strategies' numbers depend on the count, so "
    "records keep it; the committed records ran at 1 (docs: Reproducing a number). "
    "[default: 1]",
)
log_option = click.option(
    "--log",
    "log",
    multiple=True,
    metavar="NAME[:ARG]",
    help="Send the run's events to an experiment tracker: tensorboard[:DIR], "
    "mlflow[:TRACKING_URI], wandb[:PROJECT], or a logger plugin's name; repeatable.",
)
no_cache_option = click.option(
    "--no-cache",
    is_flag=True,
    default=None,
    help="Neither read nor write clbench's caches (prepared streams, frozen features).",
)


def checkpoint_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--checkpoints``, ``--no-resume`` and ``--keep-checkpoints``: a run killed part
    way goes on from its last finished experience (the same for one run and a sweep)."""
    command = click.option(
        "--keep-checkpoints", is_flag=True, default=None,
        help="Keep each run's checkpoint after its record is written.",
    )(command)  # fmt: skip
    command = click.option(
        "--no-resume", is_flag=True, default=None,
        help="Start every run over, whatever checkpoint it left.",
    )(command)  # fmt: skip
    return click.option(
        "--checkpoints", type=WritableFolder(), default=None,
        help="Folder of checkpoints (one per run, replaced after every experience). "
        "[default: the cache's checkpoints/; none with --no-cache]",
    )(command)  # fmt: skip


def folder_split_options(command: Callable[..., Any]) -> Callable[..., Any]:
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


def records_options(out_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--runs`` (records to read), ``--out`` (where to write) and ``--html`` (where the
    site goes), as the commands that regenerate files from records share them."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        runs = click.Path(path_type=Path, exists=True, file_okay=False)
        command = click.option("--html", type=WritableFolder(), default=None,
                               help="Folder for the leaderboard site (replaced as a whole). "
                               "[default: OUT/site]")(command)  # fmt: skip
        command = click.option("--out", type=WritableFolder(), default=Path("leaderboards"),
                               show_default=True, help=out_help)(command)  # fmt: skip
        return click.option("--runs", type=runs, default=Path("runs"), show_default=True,
                            help="Folder of run records to read.")(command)  # fmt: skip

    return decorate

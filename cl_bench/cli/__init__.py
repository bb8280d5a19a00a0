"""Stage 7, the ``clbench`` command line: the click group here, one module per command.

May import every stage; nothing imports it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.markup import escape

from cl_bench import __version__
from cl_bench.cli.cache import cache
from cl_bench.cli.console import console
from cl_bench.cli.evaluate import evaluate
from cl_bench.cli.leaderboard import leaderboard
from cl_bench.cli.list import list_command
from cl_bench.cli.options import WritableFolder
from cl_bench.cli.prepare import prepare_command
from cl_bench.cli.report import report
from cl_bench.cli.sweep import sweep
from cl_bench.utils.errors import ClbenchError
from cl_bench.utils.files import CACHE_ENV, DATA_ENV


@click.group()
@click.version_option(__version__, prog_name="clbench")
@click.option(
    "--cache-dir",
    type=WritableFolder(),
    default=None,
    help=f"Where prepared streams and frozen features are cached (default: ${CACHE_ENV} "
    "or the user cache directory).",
)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path, file_okay=False),
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


for command in (list_command, evaluate, sweep, prepare_command, leaderboard, report, cache):
    cli.add_command(command)


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

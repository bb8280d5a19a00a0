"""Stage 7, the ``clbench`` command line: the click group here, one module per command.

May import every stage; nothing imports it.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path

import click
from rich.markup import escape

from cl_bench import __version__
from cl_bench.cli.console import console
from cl_bench.cli.path_types import WritableFolder
from cl_bench.utils.errors import ClbenchError
from cl_bench.utils.files import CACHE_ENV, DATA_ENV

# name: (module, attribute, first line of its help). A command's module, and torch with
# it, is imported only when that command runs, so `clbench --help` answers at once.
COMMANDS = {
    "list": ("cl_bench.cli.list", "list_command",
             "List the installed strategies, streams or backbones and who provides them."),
    "evaluate": ("cl_bench.cli.evaluate", "evaluate",
                 "Run one strategy over a class-incremental stream and write its run record."),
    "sweep": ("cl_bench.cli.sweep", "sweep",
              "Run every strategy x stream x backbone x seed, then regenerate the leaderboards."),
    "verify": ("cl_bench.cli.verify", "verify",
               "Rerun run records exactly as they describe their runs and compare the "
               "numbers."),
    "prepare": ("cl_bench.cli.prepare", "prepare_command",
                "Check a stream's data, decode and cache its images (once, before runs or "
                "sweeps)."),
    "leaderboard": ("cl_bench.cli.leaderboard", "leaderboard",
                    "Regenerate the leaderboards from run records: CSV, Markdown, accuracy "
                    "plots and the HTML site."),
    "report": ("cl_bench.cli.report", "report",
               "Leaderboards, and per stream a report page: table, curves, compatibility "
               "heat maps."),
    "predict": ("cl_bench.cli.predict", "predict_command",
                "Classify image files with a model saved by `clbench evaluate --save-model`."),
    "tune": ("cl_bench.cli.tune", "tune",
             "Tune a strategy's declared search space with Optuna on the validation split."),
    "export": ("cl_bench.cli.export", "export",
               "Put finished run records into an experiment tracker as finished runs."),
    "cache": ("cl_bench.cli.cache", "cache",
              "Show or free the on-disk cache of prepared streams and frozen features."),
}  # fmt: skip


class LazyGroup(click.Group):
    """A group whose commands are imported when one is run or asked for its help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.utils.make_default_short_help(text, limit))
                for name, (_, _, text) in COMMANDS.items()]  # fmt: skip
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
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


def _long_words_shortened(message: str) -> str:
    """Click quotes a refused value whole (``--split`` of 100 KB gives a 100 KB message);
    each word over 200 characters is cut, so a message stays smaller than its cause."""
    return re.sub(r"\S{200,}", lambda word: f"{word[0][:100]}...({len(word[0])} characters)",
                  message)  # fmt: skip


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        console.print("[red]interrupted[/]; no record was written")
        sys.exit(130)
    except click.ClickException as error:
        error.message = _long_words_shortened(error.message)
        error.show()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]; no record was written")
        sys.exit(130)
    except ClbenchError as error:
        console.print(f"[red]error:[/] {escape(str(error))}", highlight=False)
        sys.exit(2)

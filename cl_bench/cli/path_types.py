"""Parameter types for files and folders the user names, checked when the command line
is read (before any compute). Light on purpose: the top-level group uses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cl_bench.utils.errors import shortened
from cl_bench.utils.files import folder_problem


class WritableFolder(click.Path):
    """A folder that exists and is writable, or can be created: checked when the command
    line is read, before any compute, so that no result is lost at its final write."""

    name = "folder"

    def __init__(self) -> None:
        super().__init__(path_type=Path, file_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        path = Path(super().convert(value, param, ctx))
        problem = folder_problem(path)
        if problem:
            self.fail(f"{shortened(str(path))} {problem}", param, ctx)
        return path


def nonempty_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A file that exists and has bytes (a checkpoint's format is checked when loaded)."""
    if value is not None and value.stat().st_size == 0:
        raise click.BadParameter(f"{shortened(str(value))} is empty", ctx, param)
    return value

"""Terminal output: progress bars while work runs, tables when it is done."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

T = TypeVar("T")

console = Console(stderr=True)
stdout = Console()


@contextlib.contextmanager
def progress_tracker() -> Iterator[Callable[..., Iterator[Any]]]:
    """Yield ``track(iterable, total=, description=)``: each call shows a bar while iterated.

    Nested calls (experiences > epochs > batches) show nested bars; finished inner
    bars disappear so that the display stays a few lines high.
    """
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )

    def track(
        iterable: Iterable[T], total: int | None = None, description: str = ""
    ) -> Iterator[T]:
        task = progress.add_task(description, total=total)
        try:
            for item in iterable:
                yield item
                progress.advance(task)
        finally:
            progress.remove_task(task)

    with progress:
        yield track


def table(
    title: str, columns: list[str], rows: Iterable[Iterable[Any]], *, numeric: bool = True
) -> Table:
    """A table whose first column is a label; the others are right-aligned when ``numeric``."""
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        right = numeric and index > 0
        result.add_column(column, justify="right" if right else "left", no_wrap=index == 0)
    for row in rows:
        result.add_row(*(Text(str(cell)) for cell in row))  # literal: never markup
    return result

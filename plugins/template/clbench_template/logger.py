"""Template logger plugin: a run's events as lines of a CSV file, one file per run.

The same hook serves a tracker such as ClearML or Neptune: make its run in ``start``,
send values in ``scalar`` and ``experience``, attach ``run.artifacts`` in ``end``, and
finish it in ``close`` (``error`` says whether the run failed). clbench calls these in
the process that runs the run; a method that raises is reported once and the logger
is dropped, so a broken tracker never costs a run.
"""

from __future__ import annotations

import csv
from pathlib import Path

from cl_bench import ExperienceDone, RunEnd, RunLogger, RunStart


class CsvLogger(RunLogger):
    def __init__(self, folder: str | None):
        self.folder = Path(folder or "clbench-csv")
        self.file = None
        self.rows = None

    def start(self, run: RunStart) -> None:
        path = self.folder / f"{run.path}.csv"  # run.path is safe as a path, one per run
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w", newline="")
        self.rows = csv.writer(self.file)
        self.rows.writerow(["name", "step", "value"])

    def scalar(self, name: str, value: float, step: int) -> None:
        self.rows.writerow([name, step, value])

    def experience(self, done: ExperienceDone) -> None:
        self.rows.writerow(["accuracy/seen", done.index, done.average])

    def end(self, run: RunEnd) -> None:
        for name, value in run.metrics.items():
            self.rows.writerow([f"final/{name}", "", value])

    def close(self, error: BaseException | None) -> None:
        if self.file is not None:
            self.file.close()

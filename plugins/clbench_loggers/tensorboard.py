"""``--log tensorboard[:DIR]``: event files under DIR, one folder per run (the record's
path), grouped under the sweep's name when the run belongs to one."""

from __future__ import annotations

import json
from pathlib import Path

from cl_bench import ExperienceDone, RunEnd, RunLogger, RunStart
from clbench_loggers.common import experience_values, flat


class TensorBoardLogger(RunLogger):
    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.writer = None

    def start(self, run: RunStart) -> None:
        from torch.utils.tensorboard import SummaryWriter

        group = Path(run.group) if run.group else Path()
        self.writer = SummaryWriter(log_dir=str(self.folder / group / run.path))
        self.writer.add_text("run/config", _table(dict(flat(run.config))))
        self.writer.add_text("run/identity", _table(run.identity))

    def scalar(self, name: str, value: float, step: int) -> None:
        self.writer.add_scalar(name, value, step)

    def experience(self, done: ExperienceDone) -> None:
        for name, value in experience_values(done).items():
            self.writer.add_scalar(name, value, done.index)

    def end(self, run: RunEnd) -> None:
        last = len(run.record["metrics"]["accuracy_curve"]) - 1
        for name, value in run.metrics.items():
            self.writer.add_scalar(f"final/{name}", value, last)
        self.writer.add_text("run/record", f"```json\n{json.dumps(run.record, indent=1)}\n```")

    def close(self, error: BaseException | None) -> None:
        if self.writer is not None:
            self.writer.close()


def _table(values: dict) -> str:
    return "\n".join(f"| {key} | {value} |" for key, value in values.items())

"""``--log wandb[:PROJECT]``: one Weights & Biases run per clbench run (project
``clbench`` by default), grouped by its sweep, the config as its config, values with
their own step counters, the summary metrics, and the record and heat map as an
artifact. ``WANDB_MODE=offline`` keeps everything in local files (``wandb sync``
uploads them later)."""

from __future__ import annotations

from cl_bench import ExperienceDone, RunEnd, RunLogger, RunStart
from clbench_loggers.common import experience_values, tags


class WandbLogger(RunLogger):
    def __init__(self, project: str):
        self.project = project
        self.run = None
        self.defined: set[str] = set()

    def start(self, run: RunStart) -> None:
        import wandb

        self.run = wandb.init(
            project=self.project, name=run.label, group=run.group, config=dict(run.config),
            tags=[f"{k}:{v}" for k, v in tags(run).items()][:64], reinit="create_new",
        )  # fmt: skip
        self.run.config.update({"recipe": dict(run.recipe), "provenance": dict(run.provenance)})

    def scalar(self, name: str, value: float, step: int) -> None:
        self._log({name: value}, f"step/{name}", step)

    def experience(self, done: ExperienceDone) -> None:
        self._log(experience_values(done), "experience", done.index)

    def end(self, run: RunEnd) -> None:
        import wandb

        self.run.summary.update(dict(run.metrics))
        artifact = wandb.Artifact(f"record-{self.run.id}", type="clbench-record")
        for path in run.artifacts:
            artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def close(self, error: BaseException | None) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if error else 0)

    def _log(self, values: dict[str, float], step_name: str, step: int) -> None:
        """W&B's own step must only grow, and training steps and experiences count
        apart, so each value is plotted against a step metric of its own."""
        for name in values:
            if name not in self.defined:
                self.run.define_metric(step_name, hidden=True)
                self.run.define_metric(name, step_metric=step_name)
                self.defined.add(name)
        self.run.log({**values, step_name: step})

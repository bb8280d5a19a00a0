"""``--log mlflow[:TRACKING_URI]``: one MLflow run per clbench run, in the experiment
``$MLFLOW_EXPERIMENT_NAME`` (default ``clbench``): the config and recipe as params, the
strategy, stream, backbone, seed, variant and sweep as tags, every value with its step,
the record and its heat map as artifacts. Values are sent in batches (one request per
experience, not one per training step)."""

from __future__ import annotations

import os
import time
from functools import cached_property

from cl_bench import ExperienceDone, RunEnd, RunLogger, RunStart
from clbench_loggers.common import experience_values, flat, tags

PARAM_LIMIT = 6000  # characters of one MLflow param value
BATCH = 1000  # MLflow's largest batch of metrics


class MlflowLogger(RunLogger):
    def __init__(self, tracking_uri: str | None):
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.run_id: str | None = None
        self.pending: list = []

    def holds(self, run: RunStart) -> bool:
        """Whether an exported record is in the experiment already (by its SHA-256)."""
        found = self.client.search_runs(
            [self._experiment], f"tags.`clbench.record` = '{run.record_sha256}'", max_results=1
        )  # fmt: skip
        return bool(found)

    def start(self, run: RunStart) -> None:
        named = {f"clbench.{k}": v for k, v in tags(run).items()}
        if run.record_sha256:
            named["clbench.record"] = run.record_sha256
        self.run_id = self.client.create_run(
            self._experiment, run_name=run.label, tags=named
        ).info.run_id
        params = dict(flat(run.config, "config.")) | dict(flat(run.recipe, "recipe."))
        params |= {f"provenance.{k}": v for k, v in flat(run.provenance)}
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[
            Param(key, str(value)[:PARAM_LIMIT]) for key, value in params.items()
        ])  # fmt: skip

    def scalar(self, name: str, value: float, step: int) -> None:
        self._add(name, value, step)
        if len(self.pending) >= BATCH:
            self._flush()

    def experience(self, done: ExperienceDone) -> None:
        for name, value in experience_values(done).items():
            self._add(name, value, done.index)
        self._flush()

    def end(self, run: RunEnd) -> None:
        last = len(run.record["metrics"]["accuracy_curve"]) - 1
        for name, value in run.metrics.items():
            self._add(name, value, last)
        self._flush()
        for path in run.artifacts:
            self.client.log_artifact(self.run_id, str(path))

    def close(self, error: BaseException | None) -> None:
        if self.run_id is None:
            return
        if error is None:
            self._flush()
        self.client.set_terminated(self.run_id, "FAILED" if error else "FINISHED")

    @cached_property
    def _experiment(self) -> str:
        """The experiment's id (made if new): looked up once a logger, which is one run."""
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "clbench")
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found else self.client.create_experiment(name)

    def _add(self, name: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        self.pending.append(Metric(name, value, int(time.time() * 1000), step))

    def _flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.client.log_batch(self.run_id, metrics=batch)

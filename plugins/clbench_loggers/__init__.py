"""The built-in experiment trackers: TensorBoard, MLflow and Weights & Biases.

Registered through the ``cl_bench`` entry point, exactly as a third-party logger
(ClearML, Neptune, ...) would be: a ``cl_bench_loggers`` hook returning
:class:`cl_bench.LoggerSpec` objects. Each tracker's library is imported when a run
makes its logger, never when clbench starts.
"""

from __future__ import annotations

from cl_bench import LoggerSpec, hookimpl


def _tensorboard(argument: str | None):
    from clbench_loggers.tensorboard import TensorBoardLogger

    return TensorBoardLogger(argument or "tensorboard")


def _mlflow(argument: str | None):
    from clbench_loggers.mlflow import MlflowLogger

    return MlflowLogger(argument)


def _wandb(argument: str | None):
    from clbench_loggers.wandb import WandbLogger

    return WandbLogger(argument or "clbench")


@hookimpl
def cl_bench_loggers() -> list[LoggerSpec]:
    return [
        LoggerSpec("tensorboard", "TensorBoard event files: --log tensorboard[:DIR] "
                   "(default ./tensorboard), one folder per run", _tensorboard,
                   requires=("tensorboard",), install="pip install 'clbench[tensorboard]'"),
        LoggerSpec("mlflow", "an MLflow run per clbench run: --log mlflow[:TRACKING_URI] "
                   "(default: MLflow's own, $MLFLOW_TRACKING_URI or ./mlruns)", _mlflow,
                   requires=("mlflow",), install="pip install 'clbench[mlflow]'"),
        LoggerSpec("wandb", "a Weights & Biases run per clbench run: --log wandb[:PROJECT] "
                   "(default project clbench; WANDB_MODE=offline works)", _wandb,
                   requires=("wandb",), install="pip install 'clbench[wandb]'"),
    ]  # fmt: skip

"""A tuning trial's link to its Optuna study, from inside the run: after each
experience it reports the accuracy on every experience seen so far, and stops the run
when the study's pruner judges the trial worse than the others were at that point.
It is a run logger, so it sees what every logger sees and costs a run nothing else."""

from __future__ import annotations

from cl_bench.training.tracking import ExperienceDone, RunLogger, RunStopped


class TrialPruned(RunStopped):
    """The study pruned this trial; its run stops, and the trial is told PRUNED."""


class TrialReporter(RunLogger):
    def __init__(self, storage: str, study: str, trial_id: int):
        import optuna

        self.trial = optuna.trial.Trial(optuna.load_study(study_name=study, storage=storage),
                                        trial_id)  # fmt: skip

    def experience(self, done: ExperienceDone) -> None:
        self.trial.report(done.average, done.index)
        if self.trial.should_prune():
            raise TrialPruned(f"pruned after experience {done.index} "
                              f"(accuracy on the experiences seen {done.average:.2f})")  # fmt: skip


def pruned(error_type: str | None) -> bool:
    return error_type == TrialPruned.__name__

"""``clbench tune``: an Optuna study over a strategy's declared search space, every trial
an ordinary run on the validation split, then the best settings on the test split.

Trials run in batches of ``workers`` through the sweep machinery (local pool or Ray),
so each leaves an ordinary record beside the study and a trial whose record exists is
not run again. The study lives in Optuna storage (a SQLite file beside the records by
default; any RDB URL lets several machines work on one study); each trial is told as
its run finishes, so an interrupted study loses no finished trial, and a study that has
its trials is not repeated. Optuna is imported only here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cl_bench.experiments.executors import Executor
from cl_bench.experiments.runs import RunSpec
from cl_bench.experiments.sweep import Outcome, run_sweep
from cl_bench.experiments.trials import pruned
from cl_bench.results.records import read_record
from cl_bench.training.registry import Registry
from cl_bench.training.search import Choice, Dimension, Range, check_space, setting_text
from cl_bench.utils.errors import ClbenchError, ConfigError, shortened

OPTUNA_INSTALL = "pip install 'clbench[tune]'"
OBJECTIVES = {"average": "average_incremental_accuracy", "last": "last_accuracy"}
SAMPLERS = ("tpe", "random")


@dataclass(frozen=True)
class Study:
    """What a tuning study is: the run it varies, the space, the objective, the budget."""

    base: RunSpec  # the trials' run: its strategy, stream, backbone, seed and fixed --set
    space: Mapping[str, Dimension]
    objective: Literal["average", "last"]
    name: str
    storage: str
    trials: int | None = None
    timeout: float | None = None
    sampler: Literal["tpe", "random"] = "tpe"
    pruning: bool = True

    def identity(self) -> dict[str, Any]:
        """What makes two commands the same study: a study is gone on with only by a
        command that asks the same question, so that its trials stay comparable."""
        return {
            "strategy": self.base.strategy, "stream": self.base.stream,
            "backbone": self.base.backbone, "seed": self.base.seed,
            "limit_per_class": self.base.limit_per_class,
            "fixed": dict(sorted(self.base.overrides.items())),
            "space": {key: d.describe() for key, d in sorted(self.space.items())},
            "objective": OBJECTIVES[self.objective], "sampler": self.sampler,
            "pruning": self.pruning,
        }  # fmt: skip


def default_study_name(base: RunSpec, objective: str) -> str:
    return f"{base.strategy}-{base.stream}-{base.backbone}-{objective}"


def checked_space(registry: Registry, base: RunSpec) -> Mapping[str, Dimension]:
    """The strategy's declared space, checked against its config; keys fixed by ``--set``
    are not searched."""
    spec = registry.strategy(base.strategy)
    if not spec.search:
        raise ConfigError(f"strategy {shortened(base.strategy)} declares no search space: "
                          "it has nothing to tune")  # fmt: skip
    check_space(spec.name, spec.strategy.Config, spec.search)
    space = {key: d for key, d in spec.search.items() if key not in base.overrides}
    if not space:
        raise ConfigError("--set fixes every key of the search space: nothing is left to tune")
    return space


def open_study(study: Study, attempts: int = 3, wait: float = 1.0) -> Any:
    """The Optuna study (made, or loaded to go on); storage that cannot be reached is a
    clear error before any trial.

    Two machines starting on a fresh database race to create Optuna's tables, and the
    loser's attempt fails although the storage is fine: so a failure is tried again,
    ``attempts`` times in all, before it is reported."""
    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    # a trial worse than the median of the others at the same experience stops, once
    # five trials have finished (Optuna's default rule)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=5) if study.pruning
              else optuna.pruners.NopPruner())  # fmt: skip
    for attempt in range(1, attempts + 1):
        try:
            optuna_study = optuna.create_study(
                study_name=study.name, storage=study.storage, load_if_exists=True,
                direction="maximize", sampler=samplers[study.sampler](seed=study.base.seed),
                pruner=pruner,
            )  # fmt: skip
        except Exception as error:  # a bad URL, a server that does not answer, no driver
            if attempt == attempts:
                raise ClbenchError(
                    f"the study storage {shortened(study.storage)} cannot be used "
                    f"({type(error).__name__}: {str(error)[:200]})"
                ) from error
            time.sleep(wait)
        else:
            return _same_study(optuna_study, study)
    raise AssertionError("attempts must be at least 1")


def _same_study(optuna_study: Any, study: Study) -> Any:
    """The study, marked with what it asks on first use; one made by a command asking
    something else is refused, naming the difference."""
    made_for = optuna_study.user_attrs.get("clbench")
    wanted = json.loads(json.dumps(study.identity()))  # as storage gives it back
    if made_for is None:
        optuna_study.set_user_attr("clbench", wanted)
        return optuna_study
    differences = [f"{key} {made_for.get(key)!r} (this command: {value!r})"
                   for key, value in wanted.items() if made_for.get(key) != value]  # fmt: skip
    if differences:
        raise ConfigError(f"the study {shortened(study.name)} in {shortened(study.storage)} was "
                          f"made with " + "; ".join(differences) + ": its trials would not "
                          "compare with this command's. Give the same settings, or name "
                          "another study with --study")  # fmt: skip
    return optuna_study


def suggest(trial: Any, space: Mapping[str, Dimension]) -> dict[str, str]:
    """One trial's settings, as ``--set`` values."""
    values: dict[str, str] = {}
    for key, dimension in space.items():
        if isinstance(dimension, Range) and dimension.integer:
            value: Any = trial.suggest_int(key, dimension.low, dimension.high, log=dimension.log)
        elif isinstance(dimension, Range):
            value = trial.suggest_float(key, dimension.low, dimension.high, log=dimension.log)
        elif isinstance(dimension, Choice):
            value = trial.suggest_categorical(key, list(dimension.options))
        values[key] = setting_text(value)
    return values


def finished(optuna_study: Any) -> int:
    """Trials that have run to an end: completed, pruned or failed (the budget counts
    them all, or a study whose trials keep failing would never end)."""
    states = import_optuna().trial.TrialState
    ended = (states.COMPLETE, states.PRUNED, states.FAIL)
    return sum(t.state in ended for t in optuna_study.trials)


def run_study(
    study: Study,
    output: Path,
    executor: Executor,
    workers: int,
    on_trial: Callable[[int, Outcome, float | None], None] = lambda *_: None,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """Trials until the study has ``trials`` finished ones or ``timeout`` seconds pass;
    returns the Optuna study."""
    optuna = import_optuna()
    optuna_study = open_study(study)
    deadline = None if study.timeout is None else clock() + study.timeout
    while True:
        left = math.inf if study.trials is None else study.trials - finished(optuna_study)
        if left <= 0 or (deadline is not None and clock() >= deadline):
            return optuna_study
        batch = [optuna_study.ask() for _ in range(int(min(workers, left)))]
        specs = {}
        for trial in batch:
            overrides = {**study.base.overrides, **suggest(trial, study.space)}
            spec = dataclasses.replace(
                study.base,
                overrides=overrides,
                split="validation",
                trial=(study.storage, study.name, trial._trial_id),
            )
            specs[spec.record_path(output)] = (trial, spec)
        for outcome in run_sweep([spec for _, spec in specs.values()], output, executor):
            trial, _ = specs[outcome.spec.record_path(output)]
            if outcome.status == "failed" and pruned(outcome.error_type):
                outcome.path.unlink(missing_ok=True)  # not a failure: no note to retry
                optuna_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                on_trial(trial.number, outcome, None)
                continue
            if outcome.status == "failed":
                optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)
                on_trial(trial.number, outcome, None)
                continue
            value = read_record(outcome.path)["metrics"][OBJECTIVES[study.objective]]
            optuna_study.tell(trial, value)
            on_trial(trial.number, outcome, value)


def best_trials(optuna_study: Any, count: int = 5) -> list[Any]:
    optuna = import_optuna()
    done = [t for t in optuna_study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return sorted(done, key=lambda t: t.value, reverse=True)[:count]


def tuned_runs(study: Study, optuna_study: Any, seeds: list[int]) -> list[RunSpec]:
    """The best settings on the test split over ``seeds``, as the variant ``tuned``: the
    record keeps the study's name, its finished trials and the space."""
    best = optuna_study.best_trial
    settings = {key: setting_text(value) for key, value in best.params.items()}
    tuning = {
        "study": study.name,
        "trials": finished(optuna_study),
        "objective": OBJECTIVES[study.objective],
        "split": "validation",
        "best_value": best.value,
        "best_trial": best.number,
        "space": {key: d.describe() for key, d in study.space.items()},
        "sampler": study.sampler,
        "pruning": study.pruning,
        # what the site draws: every trial's value, and how much each setting mattered
        "history": [[t.number, t.value] for t in optuna_study.trials],
        "importances": _importances(optuna_study),
    }
    return [dataclasses.replace(study.base, seed=seed, split="test",
                                overrides={**study.base.overrides, **settings}, tuning=tuning)
            for seed in seeds]  # fmt: skip


def _importances(optuna_study: Any) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA), or none where they cannot be computed
    (fewer than two finished trials)."""
    optuna = import_optuna()
    try:
        return {
            k: float(v) for k, v in optuna.importance.get_param_importances(optuna_study).items()
        }
    except (RuntimeError, ValueError):
        return {}


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError as error:
        raise ClbenchError(f"clbench tune needs Optuna, which is not installed: "
                           f"{OPTUNA_INSTALL}") from error  # fmt: skip
    return optuna


def study_rows(optuna_study: Any) -> Iterator[tuple[str, ...]]:
    """The best trials as table rows: number, value, settings."""
    for trial in best_trials(optuna_study):
        settings = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in trial.params.items())  # fmt: skip
        yield str(trial.number), f"{trial.value:.2f}", settings

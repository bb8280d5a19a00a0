"""``clbench tune``: tune a strategy's declared search space on the validation split."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from cl_bench.cli.console import console, stdout, table
from cl_bench.cli.options import (
    DEFAULT_BACKBONE,
    DEFAULT_SEED,
    DEFAULT_STREAM,
    SEED,
    discover_registry,
    limit_per_class_option,
    threads_option,
)
from cl_bench.cli.path_types import WritableFolder
from cl_bench.experiments.executors import make_executor
from cl_bench.experiments.grid import checked_runs
from cl_bench.experiments.runs import RunSpec
from cl_bench.experiments.sweep import Outcome, run_sweep
from cl_bench.experiments.trials import pruned
from cl_bench.experiments.tune import (
    OBJECTIVES,
    Study,
    best_trials,
    checked_space,
    default_study_name,
    finished,
    import_optuna,
    run_study,
    study_rows,
    tuned_runs,
)
from cl_bench.utils.config import parse_assignments
from cl_bench.utils.errors import ConfigError
from cl_bench.utils.threads import DEFAULT_THREADS


@click.command()
@click.option("--strategy", required=True, help="The strategy to tune (its declared space).")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="Stream name.")
@click.option("--backbone", default=DEFAULT_BACKBONE, show_default=True, help="Backbone name.")
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=None,
    help="Finished trials the study should have. [default: 20 without --timeout]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop starting trials after this many seconds.",
)
@click.option(
    "--seed",
    "seeds",
    multiple=True,
    type=SEED,
    help=f"Seeds of the final test-split runs (the trials use the first). "
    f"[default: {DEFAULT_SEED}]",
)
@click.option(
    "--objective",
    type=click.Choice(sorted(OBJECTIVES)),
    default="average",
    show_default=True,
    help="Average incremental or last accuracy, on the validation split.",
)
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "random"]),
    default="tpe",
    show_default=True,
    help="Optuna's TPE, or random search (a baseline for the search itself).",
)
@click.option(
    "--pruning/--no-pruning",
    default=True,
    show_default=True,
    help="Stop a trial below the median of the earlier ones at an experience.",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Fix a setting for every trial (it is then not searched); repeatable.",
)
@limit_per_class_option
@threads_option
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Trials at a time."
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where trials run, as for sweep.",
)
@click.option(
    "--ray-address",
    envvar="RAY_ADDRESS",
    default=None,
    help="Ray cluster to connect to (with --executor ray).",
)
@click.option(
    "--storage",
    default=None,
    help="Optuna storage URL; PostgreSQL or MySQL lets several machines share one "
    "study. [default: sqlite:///TRIALS_OUTPUT/tuning.db]",
)
@click.option(
    "--study",
    "study_name",
    default=None,
    help="Study name. [default: STRATEGY-STREAM-BACKBONE-OBJECTIVE]",
)
@click.option(
    "--output",
    type=WritableFolder(),
    default=Path("runs"),
    show_default=True,
    help="Folder of run records: the tuned test-split runs (leaderboard rows).",
)
@click.option(
    "--trials-output",
    type=WritableFolder(),
    default=Path("tuning"),
    show_default=True,
    help="Folder of the trials' records (validation split) and the default study storage: "
    "apart from --output, so that trials do not become leaderboard rows.",
)
def tune(strategy: str, stream: str, backbone: str, trials: int | None,
         timeout: float | None, seeds: tuple[int, ...], objective: str, sampler: str,
         pruning: bool, assignments: tuple[str, ...], limit_per_class: int | None,
         threads: int | None, workers: int, executor: str, ray_address: str | None,
         storage: str | None, study_name: str | None, output: Path,
         trials_output: Path) -> None:  # fmt: skip
    """Tune a strategy's declared search space with Optuna on the validation split.

    Optuna's TPE (or random search) over the strategy's search space, pruning trials
    below the median at an experience; the best settings then run on the test split over
    the seeds as the variant ``tuned``.

    Every trial is an ordinary run on the validation split and leaves an ordinary record;
    the test split is never read while tuning. Rerunning goes on with the same study.
    """
    import_optuna()  # not installed: said before anything else
    registry = discover_registry()
    seeds = seeds or (DEFAULT_SEED,)
    base = RunSpec(strategy=strategy, stream=stream, backbone=backbone, seed=seeds[0],
                   overrides=parse_assignments(assignments), limit_per_class=limit_per_class,
                   threads=threads or DEFAULT_THREADS, split="validation")  # fmt: skip
    [base] = checked_runs([base], registry)
    space = checked_space(registry, base)
    if trials is None and timeout is None:
        trials = 20
    trials_output.mkdir(parents=True, exist_ok=True)
    study = Study(base=base, space=space, objective=objective,  # type: ignore[arg-type]
                  name=study_name or default_study_name(base, objective),
                  storage=storage or f"sqlite:///{(trials_output / 'tuning.db').resolve()}",
                  trials=trials, timeout=timeout, sampler=sampler,  # type: ignore[arg-type]
                  pruning=pruning)  # fmt: skip
    pool = make_executor(executor, workers=workers, ray_address=ray_address,
                         threads_per_run=base.threads)  # fmt: skip

    def said(number: int, outcome: Outcome, value: float | None) -> None:
        failure = f"[red]failed[/]: {escape(outcome.error or '')}"
        if pruned(outcome.error_type):
            failure = f"pruned ({escape(outcome.error or '')})"
        what = failure if value is None else f"{value:.2f}"
        console.print(f"trial {number}: {what} ({outcome.status})", highlight=False)

    try:
        optuna_study = run_study(study, trials_output, pool, workers, on_trial=said)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]: finished trials are in the study; the same "
                      "command goes on with it.")  # fmt: skip
        raise SystemExit(130) from None
    if not best_trials(optuna_study):
        raise ConfigError("no trial completed: nothing to run on the test split")
    stdout.print(table(f"study {study.name}: best of {finished(optuna_study)} trials "
                       f"({objective} accuracy on validation)",
                       ["trial", "value", "settings"], list(study_rows(optuna_study)),
                       numeric=False))  # fmt: skip
    for outcome in run_sweep(tuned_runs(study, optuna_study, list(seeds)), output, pool):
        where = escape(str(outcome.path))
        console.print(f"tuned run {escape(outcome.spec.label)}: {outcome.status} ({where})",
                      soft_wrap=True, highlight=False)  # fmt: skip

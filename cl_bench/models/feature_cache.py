"""A content-addressed cache of tensors on disk, shared safely by concurrent processes.

Each entry is one ``torch.save`` file named after a hash of its key. It holds the key
itself and a checksum of the tensor, so a hash collision, a foreign file or a torn or
corrupt entry is detected on load and rebuilt rather than returned.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from cl_bench.utils.errors import ClbenchError
from cl_bench.utils.files import cache_dir, write_atomically
from cl_bench.utils.tensors import tensor_digest

ENTRY_FORMAT = 1
_SUFFIX = ".pt"
_ENTRY = re.compile(r"[0-9a-f]{32}\.pt")
_LOCK = re.compile(r"[0-9a-f]{32}\.pt\.lock")
_TEMP = re.compile(r"\.[0-9a-f]{32}\.pt\..+\.tmp")  # the temp names write_atomically uses


class FeatureCacheError(ClbenchError):
    pass


class _CorruptEntry(Exception):
    """An entry file exists but cannot be trusted; the message says why."""


@dataclass(frozen=True)
class StoreInfo:
    root: Path
    entries: int
    bytes: int


def canonical_key(key: Mapping[str, Any]) -> str:
    """The one JSON text of ``key``: dict order and whitespace do not change it."""
    try:
        return json.dumps(
            dict(key), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as error:
        raise FeatureCacheError(
            f"feature cache keys must be plain JSON (str, int, float, bool, None, list, dict): "
            f"{error}"
        ) from error


class FeatureCache:
    """Tensors on disk, keyed by content (a JSON-able dict), safe for concurrent processes.

    ``hits`` counts calls answered from disk, ``misses`` calls that ran ``compute`` (so with
    ``enabled=False`` every call is a miss). ``clear`` must not run while another process
    is filling the same root: it removes the lock files that keep fills apart.
    """

    def __init__(self, root: Path | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else cache_dir() / "features"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def path_for(self, key: Mapping[str, Any]) -> Path:
        return self._path(canonical_key(key))

    def get_or_compute(
        self, key: Mapping[str, Any], compute: Callable[[], torch.Tensor]
    ) -> torch.Tensor:
        """The stored tensor for ``key``, or ``compute()``'s, stored for next time (on CPU)."""
        if not self.enabled:
            self.misses += 1
            return _checked(compute())
        canon = canonical_key(key)
        path = self._path(canon)
        try:
            tensor = _read(path, canon)
        except _CorruptEntry:
            tensor = None  # rebuilt below, under the lock, unless another process already did
        if tensor is not None:
            self.hits += 1
            return tensor

        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(path.with_name(path.name + ".lock")):
            try:
                tensor = _read(path, canon)
            except _CorruptEntry as error:
                warnings.warn(
                    f"feature cache entry {path} is corrupt ({error}); rebuilding it",
                    stacklevel=2,
                )
                tensor = None
            if tensor is not None:  # another process filled it while we waited
                self.hits += 1
                return tensor
            self.misses += 1
            tensor = _checked(compute())
            payload = {
                "format": ENTRY_FORMAT,
                "key": canon,
                "sha256": tensor_digest(tensor),
                "tensor": tensor,
            }
            write_atomically(path, lambda tmp: torch.save(payload, tmp))
        return tensor

    def info(self) -> StoreInfo:
        entries = self._files(_ENTRY)
        return StoreInfo(self.root, len(entries), sum(p.stat().st_size for p in entries))

    def clear(self) -> int:
        """Delete every entry, lock and leftover temp file; return how many entries went."""
        entries = self._files(_ENTRY)
        for path in [*entries, *self._files(_LOCK), *self._files(_TEMP)]:
            path.unlink(missing_ok=True)
        return len(entries)

    def _path(self, canon: str) -> Path:
        return self.root / (hashlib.sha256(canon.encode()).hexdigest()[:32] + _SUFFIX)

    def _files(self, pattern: re.Pattern[str]) -> list[Path]:
        """Only names this store writes, so a mistaken root loses nothing else."""
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if pattern.fullmatch(p.name) and p.is_file()]


def _checked(tensor: object) -> torch.Tensor:
    """``compute``'s result as a self-contained CPU tensor (a view would save its whole base)."""
    if not isinstance(tensor, torch.Tensor):
        raise FeatureCacheError(f"feature compute must return a torch.Tensor, not {type(tensor)}")
    tensor = tensor.detach().cpu().contiguous()
    if tensor.untyped_storage().nbytes() != tensor.nbytes:
        tensor = tensor.clone()
    return tensor


def _read(path: Path, canon: str) -> torch.Tensor | None:
    """The verified tensor in ``path``; None if there is no entry, _CorruptEntry if it is bad."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as error:  # torch raises many kinds for torn or foreign files
        raise _CorruptEntry(f"unreadable: {type(error).__name__}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != ENTRY_FORMAT:
        raise _CorruptEntry("not a feature cache entry of this version")
    if payload.get("key") != canon:
        raise _CorruptEntry("it holds a different key")
    tensor = payload.get("tensor")
    if not isinstance(tensor, torch.Tensor) or tensor_digest(tensor) != payload.get("sha256"):
        raise _CorruptEntry("checksum mismatch")
    return tensor

"""``clbench cache info|clear``: the on-disk cache of prepared streams and frozen features."""

from __future__ import annotations

from pathlib import Path

import click

from cl_bench.cli.console import console, stdout, table
from cl_bench.models.feature_cache import FeatureCache
from cl_bench.utils.files import cache_dir


@click.group()
def cache() -> None:
    """Show or free the on-disk cache of prepared streams and frozen features."""


@cache.command("info")
def cache_info() -> None:
    """Where the cache is, how many entries it holds and their size."""
    streams = _stream_cache_files()
    features = FeatureCache().info()
    rows = [
        ("frozen features", str(features.root), features.entries, _mib(features.bytes)),
        ("prepared streams", str(cache_dir() / "streams"), len(streams),
         _mib(sum(p.stat().st_size for p in streams))),
    ]  # fmt: skip
    stdout.print(table("clbench cache", ["part", "location", "entries", "size"], rows))


@cache.command("clear")
def cache_clear() -> None:
    """Delete every cache entry; the next runs recompute what they need."""
    removed = FeatureCache().clear()
    streams = _stream_cache_files()
    for path in [*streams, *(cache_dir() / "streams").glob("*.pt.lock")]:
        path.unlink(missing_ok=True)
    console.print(f"removed {removed} feature entries and {len(streams)} prepared streams")


def _stream_cache_files() -> list[Path]:
    return sorted((cache_dir() / "streams").glob("*.pt"))


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"

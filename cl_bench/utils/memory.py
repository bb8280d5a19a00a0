"""The peak resident memory of this process, as a run record states it."""

from __future__ import annotations

import contextlib
import resource
import sys
from pathlib import Path


def peak_rss_mib() -> float:
    """Peak resident memory (MiB) of this process image.

    On Linux, ``VmHWM`` of ``/proc/self/status``: the peak of this process's own memory
    since it started its program. ``getrusage``'s ``ru_maxrss`` is not that: it keeps
    the peak from before ``exec``, so a sweep worker (forked from the sweep's process,
    then exec'd by ``spawn``) would report at least its parent's size at the fork.
    Elsewhere ``ru_maxrss`` (kilobytes on Linux and BSD, bytes on macOS).
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024

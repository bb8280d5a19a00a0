"""The built-in stream specifications: every ``*.yaml`` file in this folder is a stream.

Registered through the ``cl_bench`` entry point like any plugin; adding a stream is
adding a file here.
"""

from __future__ import annotations

from pathlib import Path

from cl_bench import StreamSpec, hookimpl


@hookimpl
def cl_bench_streams() -> list[StreamSpec]:
    return [StreamSpec.from_yaml(path) for path in sorted(Path(__file__).parent.glob("*.yaml"))]

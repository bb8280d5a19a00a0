"""Interrupts a clbench run at one stage: in the middle of writing the stage's file (the
temporary file half written) or at its step. Used in-process (SIGINT) and as a child
process's entry point (SIGKILL): ``python fault_injection.py STAGE SIGNAL ARGS...``."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

STAGES = ("prepare", "features", "training", "record")


def inject(stage: str, sig: int, setattr: Callable[[Any, str, Any], None] = setattr) -> None:
    import cl_bench.data.prepared
    import cl_bench.evaluation.protocol
    import cl_bench.models.feature_cache
    import cl_bench.results.records

    def die() -> None:
        os.kill(os.getpid(), sig)

    def interrupt_writes(module: Any) -> None:
        real = module.write_atomically

        def write_atomically(path, write):
            def half_then_die(tmp):
                write(tmp)
                with open(tmp, "r+b") as handle:
                    handle.truncate(os.path.getsize(tmp) // 2)
                die()

            return real(path, half_then_die)

        setattr(module, "write_atomically", write_atomically)

    if stage == "training":
        protocol = cl_bench.evaluation.protocol
        real_call = protocol._call

        def _call(spec, what, action):
            if what == "training on experience 1":
                die()
            return real_call(spec, what, action)

        setattr(protocol, "_call", _call)
    else:
        modules = {"prepare": cl_bench.data.prepared, "features": cl_bench.models.feature_cache,
                   "record": cl_bench.results.records}  # fmt: skip
        interrupt_writes(modules[stage])


if __name__ == "__main__":
    inject(sys.argv[1], getattr(signal, sys.argv[2]))
    from cl_bench.cli import main

    sys.argv = ["clbench", *sys.argv[3:]]
    main()

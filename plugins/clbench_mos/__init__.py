"""MOS (Sun et al., AAAI 2025): model surgery for pretrained-model class-incremental
learning, with adapter merging and self-refined adapter retrieval. Registered through
the ``cl_bench`` entry point like any plugin."""

from __future__ import annotations

from cl_bench import StrategySpec, hookimpl
from clbench_mos.official import OFFICIAL
from clbench_mos.strategy import Mos


@hookimpl
def cl_bench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec(
            "mos",
            "adapter merging and self-refined adapter retrieval (Sun et al., AAAI 2025)",
            Mos,
            official=OFFICIAL,
        )
    ]

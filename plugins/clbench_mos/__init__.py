"""MOS (Sun et al., AAAI 2025): model surgery for pretrained-model class-incremental
learning, with adapter merging and self-refined adapter retrieval. Registered through
the ``cl_bench`` entry point like any plugin."""

from __future__ import annotations

from cl_bench import Origin, Range, StrategySpec, hookimpl
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
            search={
                "lr": Range.around(0.03),
                "orthogonality_weight": Range.around(0.1),
                "merge_momentum": Range(
                    0.01,
                    0.5,
                    log=True,
                    why="the EMA of adapter merging, 0.1 in AAAI25-MOS; 0.01 to 0.5",
                ),
                "alignment_lr": Range.around(0.005),
            },
            origin=Origin(
                "MOS (Sun et al., AAAI 2025)",
                "https://github.com/sun-hailong/AAAI25-MOS",
                "8d5e07c",
                "stored adapter sets are never modified (the code re-weights them while "
                "evaluating); merging once per optimiser step, as the paper",
            ),
        )
    ]

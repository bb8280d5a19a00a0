"""SEMA (Wang et al., CVPR 2025): self-expansion of a pretrained model with a mixture of
modular adapters. Registered through the ``cl_bench`` entry point like any plugin."""

from __future__ import annotations

from cl_bench import Origin, Range, StrategySpec, hookimpl
from clbench_sema.official import OFFICIAL
from clbench_sema.strategy import Sema


@hookimpl
def cl_bench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec(
            "sema",
            "self-expanding mixture of adapters with shift detection (Wang et al., CVPR 2025)",
            Sema,
            official=OFFICIAL,
            search={
                "lr": Range.around(0.005),
                "rd_lr": Range.around(0.01),
                # the z-score over the descriptor losses that triggers an expansion; the
                # official code uses 0.5 to 2 across its data sets (exps/sema_*.json)
                "threshold": Range(
                    0.25,
                    4.0,
                    log=True,
                    why="SEMA-CL's thresholds span 0.5-2 (exps/sema_*.json); half and double that",
                ),
            },
            origin=Origin(
                "SEMA (Wang et al., CVPR 2025)",
                "https://github.com/saptarshi2000/SEMA-CL",
                "5a45512",
                "inputs normalised for the backbone; z-score with an epsilon; descriptors "
                "standardise their input (they diverge to NaN on CNN maps otherwise)",
            ),
        )
    ]

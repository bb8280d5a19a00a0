"""Baselines that bound the range: SimpleCIL (no training) and finetune-head (no memory).

Registered through the ``cl_bench`` entry point, exactly as a third-party plugin.
"""

from __future__ import annotations

from cl_bench import StrategySpec, hookimpl
from clbench_baselines.finetune_head import FinetuneHead
from clbench_baselines.simplecil import SimpleCIL


@hookimpl
def cl_bench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec(
            "simplecil",
            "prototype cosine classifier on frozen features, no training (Zhou et al. 2023)",
            SimpleCIL,
        ),
        StrategySpec(
            "finetune-head",
            "linear head trained on each experience, no memory: the forgetting lower bound",
            FinetuneHead,
        ),
    ]

"""Baselines that bound the range: SimpleCIL (no training) and finetune-head (no memory).

Registered through the ``cl_bench`` entry point, exactly as a third-party plugin.
"""

from __future__ import annotations

from cl_bench import Origin, Range, StrategySpec, hookimpl
from clbench_baselines.finetune_head import FinetuneHead
from clbench_baselines.simplecil import SimpleCIL


@hookimpl
def cl_bench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec(
            "simplecil",
            "prototype cosine classifier on frozen features, no training (Zhou et al. 2023)",
            SimpleCIL,
            origin=Origin(
                "SimpleCIL (Zhou et al., IJCV 2024)",
                "https://github.com/sun-hailong/LAMDA-PILOT",
                "2647455",
                "inputs normalised with the backbone's own statistics (PILOT feeds [0, 1] pixels)",
            ),
        ),
        StrategySpec(
            "finetune-head",
            "linear head trained on each experience, no memory: the forgetting lower bound",
            FinetuneHead,
            search={"lr": Range.around(0.05)},
            origin=Origin("fine-tuning a linear head, the lower bound of every paper"),
        ),
    ]

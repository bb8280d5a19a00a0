"""Backward-compatible representations on a frozen backbone: OCA (Ricci et al., 2024),
lambda-orthogonality (Ricci et al., 2025) and the no-compatibility baseline (an
independently trained head per update). Registered through the ``cl_bench`` entry point
like any plugin."""

from __future__ import annotations

from cl_bench import StrategySpec, hookimpl
from clbench_compatible.independent import IndependentHead
from clbench_compatible.lambda_orth import LambdaOrth
from clbench_compatible.oca import Oca


@hookimpl
def cl_bench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec("oca", "orthogonal compatible aligned representation heads, widened by "
                     "k dims per update (Ricci et al., 2024)", Oca),
        StrategySpec("lambda-orth", "new head per update + lambda-orthogonal backward "
                     "transform into the previous space (Ricci et al., 2025)", LambdaOrth),
        StrategySpec("independent-head", "a new representation head per update, no "
                     "compatibility: the baseline of oca and lambda-orth", IndependentHead),
    ]  # fmt: skip

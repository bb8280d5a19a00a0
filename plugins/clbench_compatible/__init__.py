"""Backward-compatible representations on a frozen backbone: OCA (Ricci et al., 2024),
lambda-orthogonality (Ricci et al., 2025) and the no-compatibility baseline (an
independently trained head per update). Registered through the ``cl_bench`` entry point
like any plugin."""

from __future__ import annotations

from cl_bench import Origin, Range, StrategySpec, hookimpl
from clbench_compatible.independent import IndependentHead
from clbench_compatible.lambda_orth import LambdaOrth
from clbench_compatible.oca import Oca


@hookimpl
def cl_bench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec("oca", "orthogonal compatible aligned representation heads, widened by "
                     "k dims per update (Ricci et al., 2024)", Oca,
                     search={"lr": Range.around(0.001), "cosine_weight": Range.around(5.0)},
                     origin=Origin("OCA (Ricci et al., 2024)", "https://github.com/z3n0e/OCA", "",
                                   "trains on its experience plus a rehearsal memory (the "
                                   "paper: the extended training set); Cayley orthogonal map")),
        StrategySpec("lambda-orth", "new head per update + lambda-orthogonal backward "
                     "transform into the previous space (Ricci et al., 2025)", LambdaOrth,
                     search={"lr": Range.around(0.001), "lam": Range.around(12.0)},
                     origin=Origin("lambda-orthogonality (Ricci et al., 2025)", "", "",
                                   "alpha, w1-w3, temperature and epochs are this suite's "
                                   "choices: the paper leaves them open")),
        StrategySpec("independent-head", "a new representation head per update, no "
                     "compatibility: the baseline of oca and lambda-orth", IndependentHead,
                     search={"lr": Range.around(0.001)},
                     origin=Origin("the independent-training baseline of OCA and "
                                   "lambda-orthogonality (Ricci et al., 2024, 2025)")),
    ]  # fmt: skip

"""The comparators every paper of this line reports against, as LAMDA-PILOT and the
authors' code run them: RanPAC, APER (adapter), EASE, FeCAM, and joint training as the
non-continual reference. Registered through the ``cl_bench`` entry point like any
plugin; each module's docstring lists where it departs from the official code."""

from __future__ import annotations

from cl_bench import Origin, Range, StrategySpec, hookimpl
from clbench_zoo.aper import Aper
from clbench_zoo.ease import Ease
from clbench_zoo.fecam import Fecam
from clbench_zoo.joint import Joint
from clbench_zoo.official import APER, EASE, FECAM, RANPAC
from clbench_zoo.ranpac import Ranpac

PILOT, COMMIT = "https://github.com/sun-hailong/LAMDA-PILOT", "2647455"
ORIGINS = {
    "ranpac": Origin(
        "RanPAC (McDonnell et al., NeurIPS 2023)",
        PILOT,
        COMMIT,
        "G and C in float64 by Cholesky; logits h W unnormalised, as the paper "
        "(PILOT cosine-normalises W)",
    ),
    "aper": Origin(
        "APER (Zhou et al., IJCV 2024)",
        PILOT,
        COMMIT,
        "adapter PETL only (VPT, SSF and full fine-tuning are not on the shared backend)",
    ),
    "ease": Origin(
        "EASE (Zhou et al., CVPR 2024)",
        PILOT,
        COMMIT,
        "finished adapter sets are registered modules (the code keeps a plain list)",
    ),
    "fecam": Origin(
        "FeCAM (Goswami et al., NeurIPS 2023)",
        PILOT,
        COMMIT,
        "the authors' frozen-backbone setting by default; shrinkage applied once, as the paper",
    ),
    "joint": Origin("joint training on all data seen so far, the reference of every paper"),
}


@hookimpl
def cl_bench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec("ranpac", "first-session adapters, random projection + ReLU, ridge "
                     "classifier (McDonnell et al., NeurIPS 2023)", Ranpac, official=RANPAC,
                     search={"lr": Range.around(0.01)},
                     origin=ORIGINS["ranpac"]),
        StrategySpec("aper", "first-session adapters, prototypes on pretrained + adapted "
                     "features (APER/ADAM, Zhou et al., IJCV 2024)", Aper, official=APER,
                     search={"lr": Range.around(0.01)},
                     origin=ORIGINS["aper"]),
        StrategySpec("ease", "one adapter subspace per task, semantic-guided prototype "
                     "complement (Zhou et al., CVPR 2024)", Ease, official=EASE,
                     search={"lr": Range.around(0.025), "alpha": Range.around(0.1)},
                     origin=ORIGINS["ease"]),
        StrategySpec("fecam", "per-class covariance, Tukey transform, Mahalanobis "
                     "classifier (Goswami et al., NeurIPS 2023)", Fecam, official=FECAM,
                     search={"tukey_beta": Range(0.1, 1.0, why="Tukey's power: 0.5 in "
                                                 "the paper; 1 is no transform")},
                     origin=ORIGINS["fecam"]),
        StrategySpec("joint", "reference, not continual: trains a fresh head (and adapters) "
                     "on all data seen so far", Joint, reference=True,
                     search={"lr": Range.around(0.05)},
                     origin=ORIGINS["joint"]),
    ]  # fmt: skip

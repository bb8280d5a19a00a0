"""The comparators every paper of this line reports against, as LAMDA-PILOT and the
authors' code run them: RanPAC, APER (adapter), EASE, FeCAM, and joint training as the
non-continual reference. Registered through the ``cl_bench`` entry point like any
plugin; each module's docstring lists where it departs from the official code."""

from __future__ import annotations

from cl_bench import StrategySpec, hookimpl
from clbench_zoo.aper import Aper
from clbench_zoo.ease import Ease
from clbench_zoo.fecam import Fecam
from clbench_zoo.joint import Joint
from clbench_zoo.official import APER, EASE, FECAM, RANPAC
from clbench_zoo.ranpac import Ranpac


@hookimpl
def cl_bench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec("ranpac", "first-session adapters, random projection + ReLU, ridge "
                     "classifier (McDonnell et al., NeurIPS 2023)", Ranpac, official=RANPAC),
        StrategySpec("aper", "first-session adapters, prototypes on pretrained + adapted "
                     "features (APER/ADAM, Zhou et al., IJCV 2024)", Aper, official=APER),
        StrategySpec("ease", "one adapter subspace per task, semantic-guided prototype "
                     "complement (Zhou et al., CVPR 2024)", Ease, official=EASE),
        StrategySpec("fecam", "per-class covariance, Tukey transform, Mahalanobis "
                     "classifier (Goswami et al., NeurIPS 2023)", Fecam, official=FECAM),
        StrategySpec("joint", "reference, not continual: trains a fresh head (and adapters) "
                     "on all data seen so far", Joint, reference=True),
    ]  # fmt: skip

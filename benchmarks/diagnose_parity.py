"""Where the gaps of parity_vs_official.py come from (issue 31), on the frozen Lite0
features of the offline default, seed 1993's class order, B0 Inc5:

- RanPAC: clbench's own steps (projection, accumulated statistics, ridge search, solve)
  with the two things that differ from PILOT varied one at a time: the random
  projection W (each side draws its own) and the logits (PILOT's cosine head normalises
  every class's column of the solution and the projected feature; clbench takes ``h W``
  as the paper and the RanPAC code do).
- FeCAM: PILOT's classifier written out (no Tukey transform; each class's covariance
  of the raw features plus 100 I, turned into a correlation matrix; Mahalanobis distance
  of L2-normalised features to L2-normalised means through its pseudo-inverse) on the
  same features. If it gives PILOT's curve, the gap to clbench (the authors' classifier:
  Tukey, shrinkage, correlation normalisation) is that classifier and nothing else.

    .venv/bin/python benchmarks/diagnose_parity.py [--draws 5] [--seed 1993]

parity_vs_official.py's PILOT curves (benchmarks/results/parity.json) are the comparison.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from clbench_zoo.ranpac import RIDGE_GRID, official_ridge_floor, ridge_solution, select_ridge

from cl_bench.data.prepared import prepare
from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.models.backbones.packaged import EFFICIENTNET_LITE0
from cl_bench.training.registry import Registry

INCREMENT, PROJECTION = 5, 10_000


def frozen_features(images: torch.Tensor) -> torch.Tensor:
    backbone = EFFICIENTNET_LITE0.load(BackboneOptions())
    backbone.model.eval()
    return torch.cat([backbone.features(batch) for batch in images.split(256)])


def curves(features, labels, is_test, order, draw: int) -> dict[str, list[float]]:
    """Accuracy after every task with W drawn from ``draw``, under both logits."""
    relabel = torch.empty(len(order), dtype=torch.long)
    relabel[torch.as_tensor(order)] = torch.arange(len(order))
    labels = relabel[labels]
    projection = torch.randn(features.shape[1], PROJECTION,
                             generator=torch.Generator().manual_seed(draw))  # fmt: skip
    hidden = torch.relu(features @ projection).double()
    gram = torch.zeros(PROJECTION, PROJECTION, dtype=torch.float64)
    sums = torch.zeros(PROJECTION, len(order), dtype=torch.float64)
    shuffle = torch.Generator().manual_seed(draw)
    result: dict[str, list[float]] = {"h W": [], "cosine": []}
    for first in range(0, len(order), INCREMENT):
        seen = first + INCREMENT
        session = torch.nonzero(~is_test & (labels >= first) & (labels < seen)).squeeze(1)
        session = session[torch.randperm(len(session), generator=shuffle)]
        targets = F.one_hot(labels[session], len(order)).double()
        gram += hidden[session].T @ hidden[session]
        sums += hidden[session].T @ targets
        ridge, _ = select_ridge(hidden[session], targets,
                                minimum=official_ridge_floor(hidden[session]))  # fmt: skip
        solution = ridge_solution(gram, sums, ridge)[:, :seen]
        test = torch.nonzero(is_test & (labels < seen)).squeeze(1)
        plain = (hidden[test] @ solution).argmax(1)
        cosine = (F.normalize(hidden[test], dim=1) @ F.normalize(solution, dim=0)).argmax(1)
        for name, predicted in (("h W", plain), ("cosine", cosine)):
            correct = (predicted == labels[test]).double().mean().item()
            result[name].append(round(100 * correct, 2))
    return result


def pilot_fecam_curve(features, labels, is_test, order) -> list[float]:
    """PILOT's FeCAM classifier (models/fecam.py at 2647455), written out here."""
    relabel = torch.empty(len(order), dtype=torch.long)
    relabel[torch.as_tensor(order)] = torch.arange(len(order))
    labels = relabel[labels]
    means, inverses, curve = [], [], []
    for first in range(0, len(order), INCREMENT):
        seen = first + INCREMENT
        for label in range(first, seen):
            own = features[~is_test & (labels == label)]
            covariance = torch.cov(own.T) + 100 * torch.eye(own.shape[1])
            means.append(own.mean(0))
            # in float64, as float32's SVD fails to converge on some of these matrices
            # here (PILOT's own float32 run met none), with float32's cut-off for small
            # singular values, which is what PILOT's float32 pinv applies
            matrix = torch.corrcoef(covariance).double()
            cutoff = torch.finfo(torch.float32).eps * matrix.shape[0]
            inverses.append(torch.linalg.pinv(matrix, rtol=cutoff).float())
        test = torch.nonzero(is_test & (labels < seen)).squeeze(1)
        unit = F.normalize(features[test], dim=1)
        distances = torch.stack([
            ((unit - F.normalize(mean, dim=0)) @ inverse * (unit - F.normalize(mean, dim=0))).sum(1)
            for mean, inverse in zip(means, inverses, strict=True)
        ], dim=1)  # fmt: skip
        correct = (distances.argmin(1) == labels[test]).double().mean().item()
        curve.append(round(100 * correct, 2))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument(
        "--methods", nargs="+", choices=["ranpac", "fecam"], default=["ranpac", "fecam"]
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = prepare(Registry.discover().stream("offline-mix"))
    features = frozen_features(data.images)  # float32, as the strategy projects them
    np.random.seed(args.seed)
    order = np.random.permutation(len(data.class_names)).tolist()
    assert RIDGE_GRID  # the search is clbench's own
    finals: dict[str, list[float]] = {"h W": [], "cosine": []}
    for draw in range(args.draws if "ranpac" in args.methods else 0):
        result = curves(features, data.labels, data.is_test, order, draw)
        for name, curve in result.items():
            finals[name].append(curve[-1])
            print(f"W draw {draw}, {name:6s}: {curve}")
    for name, values in finals.items():
        if not values:
            continue
        print(
            f"{name}: last accuracy over {args.draws} W draws: mean {np.mean(values):.2f}, "
            f"range {min(values):.2f} .. {max(values):.2f}"
        )
    if "fecam" in args.methods:
        curve = pilot_fecam_curve(features, data.labels, data.is_test, order)
        print(f"FeCAM, PILOT's classifier written out: {curve}")


if __name__ == "__main__":
    main()

"""Why APER lands on SimpleCIL on the offline default: which half of its feature helps?

Runs APER (first-session adapters, prototypes of ``[f_pretrained ; f_adapted]``) and,
after each experience, scores three prototype classifiers on every seen class's test
images: the pretrained half alone (SimpleCIL), the adapted half alone, and both (APER).
Also prints how far adaptation moved the features (mean ``|f_adapted - f_pretrained| /
|f_pretrained|`` over the test images seen) and the share of the concatenated feature's
squared norm that comes from the adapted half, since the cosine over the concatenation
weighs the halves by their norms.
Usage:

    .venv/bin/python benchmarks/diagnose_aper.py [--seed 1993] [--set key=value ...]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import machine, strategy_on_offline_default


def accuracy(features: torch.Tensor, prototypes: torch.Tensor, labels: torch.Tensor) -> float:
    predicted = (F.normalize(features, dim=1) @ F.normalize(prototypes, dim=1).T).argmax(1)
    return 100 * (predicted.cpu() == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    args = parser.parse_args()
    aper, stream, backend = strategy_on_offline_default("aper", args.seed, args.assignments)
    width = backend.num_features
    print(machine(), "| APER config:", aper.config)
    columns = ["pretrained half", "adapted half", "both (APER)"]
    print(f"{'task':>4}" + "".join(f"{c:>18}" for c in columns)
          + f"{'feature change':>16}{'adapted norm share':>20}")  # fmt: skip
    curves: dict[str, list[float]] = {c: [] for c in columns}
    tests = []
    for train, test in stream.experiences():
        aper.train(train)
        tests.append(test)
        images = torch.cat([e.images for e in tests])
        labels = torch.cat([e.labels for e in tests])
        features = aper.embed(images)
        halves = {
            "pretrained half": (features[:, :width], aper.prototypes_[:, :width]),
            "adapted half": (features[:, width:], aper.prototypes_[:, width:]),
            "both (APER)": (features, aper.prototypes_),
        }
        row = f"{train.index + 1:>4}"
        for name, (feats, protos) in halves.items():
            curves[name].append(accuracy(feats, protos, labels))
            row += f"{curves[name][-1]:>18.2f}"
        pretrained, adapted = features[:, :width], features[:, width:]
        change = ((adapted - pretrained).norm(dim=1) / pretrained.norm(dim=1)).mean().item()
        share = (adapted.pow(2).sum(1) / features.pow(2).sum(1)).mean().item()
        print(row + f"{100 * change:>15.1f}%{100 * share:>19.1f}%")
    print(f"{'avg':>4}" + "".join(f"{sum(v) / len(v):>18.2f}" for v in curves.values()))


if __name__ == "__main__":
    main()

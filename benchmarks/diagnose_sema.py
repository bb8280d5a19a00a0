"""Where SEMA loses accuracy against SimpleCIL on the offline default: head or features?

Runs SEMA as published (linear head, old logits masked while training) and, after
each experience, scores the same model with three other classifiers:

- ``prototypes when learned``: cosine nearest class mean, each class's mean taken with
  the model of the end of its own task (a legal class-incremental classifier; old
  means go stale if the features of old classes move);
- ``prototypes, current model``: class means recomputed with the current model on the
  training images of every seen class (an oracle: it reads old data) - how separable
  SEMA's current features are;
- ``SimpleCIL``: class means of the frozen backbone (no adaptation at all).

Also prints the share of old-class test images that the linear head assigns to the
newest task's classes (recency bias). Usage:

    .venv/bin/python benchmarks/diagnose_sema.py [--seed 1993] [--set key=value ...]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import machine, strategy_on_offline_default


def nearest_mean(features: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    return (F.normalize(features, dim=1) @ F.normalize(means, dim=1).T).argmax(1)


def class_means(features: torch.Tensor, labels: torch.Tensor, classes) -> torch.Tensor:
    return torch.stack([features[labels == c].mean(0) for c in classes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    args = parser.parse_args()
    sema, stream, backend = strategy_on_offline_default("sema", args.seed, args.assignments)
    print(machine(), "| SEMA config:", sema.config)
    columns = ["linear head", "prototypes when learned", "prototypes, current model",
               "SimpleCIL"]  # fmt: skip
    print(f"{'task':>4}" + "".join(f"{c:>28}" for c in columns) + f"{'old -> newest task':>20}")
    curves: dict[str, list[float]] = {c: [] for c in columns}
    trains, tests = [], []
    stale_means, frozen_means = [], []
    for train, test in stream.experiences():
        sema.train(train)
        trains.append(train)
        tests.append(test)
        embed = lambda images: torch.cat([sema.embed(b) for b in images.split(256)])  # noqa: E731
        stale_means.append(class_means(embed(train.images), train.labels, train.classes))
        frozen_means.append(
            class_means(backend.features_of(train.images), train.labels, train.classes)
        )
        seen_images = torch.cat([e.images for e in tests])
        labels = torch.cat([e.labels for e in tests])
        current = embed(seen_images)
        all_train = torch.cat([e.images for e in trains])
        fresh_means = class_means(
            embed(all_train), torch.cat([e.labels for e in trains]), range(sema.seen_)
        )
        linear = torch.cat([sema.predict(b) for b in seen_images.split(256)])
        predictions = {
            "linear head": linear,
            "prototypes when learned": nearest_mean(current, torch.cat(stale_means)),
            "prototypes, current model": nearest_mean(current, fresh_means),
            "SimpleCIL": nearest_mean(backend.features_of(seen_images), torch.cat(frozen_means)),
        }
        row = f"{train.index + 1:>4}"
        for name in columns:
            accuracy = 100 * (predictions[name].cpu() == labels).float().mean().item()
            curves[name].append(accuracy)
            row += f"{accuracy:>28.2f}"
        old = labels < min(train.classes)
        newest = linear.cpu()[old] >= min(train.classes)
        bias = 100 * newest.float().mean().item() if old.any() else float("nan")
        print(row + f"{bias:>19.1f}%")
    print(f"{'avg':>4}" + "".join(f"{sum(v) / len(v):>28.2f}" for v in curves.values()))
    print("SEMA expansions:", sema.report()["expansions"])


if __name__ == "__main__":
    main()

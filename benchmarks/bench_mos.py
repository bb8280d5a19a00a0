"""MOS on the full offline default: training time per experience, and evaluation time of
self-refined retrieval by its two paths: the backend's batched multi-adapter forward
(``Mos._retrieve_batched``) against a full forward per round for each sample's current
adapter (``Mos._retrieve_per_round``). ``Mos.predict`` takes the faster one per device.

After each experience, both paths classify every test image seen so far; their
predictions must agree. Usage:

    .venv/bin/python benchmarks/bench_mos.py [--seed 1993] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, strategy_on_offline_default

BATCH_SIZE = 32  # the evaluation batch on a CPU (Backend.batch_size)


def timed(predict, images: torch.Tensor) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    labels = torch.cat([predict(batch) for batch in images.split(BATCH_SIZE)])
    return time.perf_counter() - start, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    args = parser.parse_args()
    mos, stream, _ = strategy_on_offline_default("mos", args.seed, args.assignments)
    print(machine())
    print(f"{'task':>4}{'train s':>9}{'test images':>13}{'batched s':>11}{'per-round s':>13}"
          f"{'ratio':>7}{'same':>6}{'accuracy':>10}")  # fmt: skip
    seen: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    totals = [0.0, 0.0, 0.0]
    for train, test in stream.experiences():
        start = time.perf_counter()
        mos.train(train)
        train_s = time.perf_counter() - start
        seen.append(test.images)
        labels.append(test.labels)
        images, truth = torch.cat(seen), torch.cat(labels)
        batched_s, batched = timed(lambda x: mos._retrieve_batched(x)[0].scores.argmax(1), images)
        naive_s, naive = timed(lambda x: mos._retrieve_per_round(x)[0].scores.argmax(1), images)
        accuracy = 100 * (batched == truth).float().mean().item()
        for i, value in enumerate((train_s, batched_s, naive_s)):
            totals[i] += value
        print(f"{train.index + 1:>4}{train_s:>9.1f}{len(images):>13}{batched_s:>11.2f}"
              f"{naive_s:>13.2f}{naive_s / batched_s:>7.2f}"
              f"{torch.equal(batched, naive)!s:>6}{accuracy:>10.2f}")  # fmt: skip
    print(
        f"total: train {totals[0]:.1f} s, batched evaluation {totals[1]:.1f} s, "
        f"per-round evaluation {totals[2]:.1f} s ({totals[2] / totals[1]:.2f}x)"
    )
    print("retrieval rounds (share of predictions):", mos.report()["retrieval_rounds_share"])


if __name__ == "__main__":
    main()

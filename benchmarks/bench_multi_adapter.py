"""Evaluating K adapter sets on the same images: one batched call against K separate passes.

``forward_many`` computes the frozen part before the first adapted block once (here
from the images, no cache), then runs the remaining blocks set by set on that shared
input ("shared") or on the K copies stacked along the batch ("stacked"). The separate
passes are K full forwards, as a per-candidate loop would do (MOS's adapter retrieval,
naively). Offline default test images, batch 64, CPU.

    .venv/bin/python benchmarks/bench_multi_adapter.py
"""

from __future__ import annotations

import time

import torch
from common import backend, machine, offline_stream

from cl_bench.models.adapters import AdapterConfig, AdapterSet

BATCH = 64


def timed(fn) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    return time.perf_counter() - start


def main() -> None:
    stream = offline_stream()
    images = torch.cat([test.images for _, test in stream.experiences()])
    print(f"machine: {machine()}; {len(images)} test images, 64 px, batch {BATCH}")
    print(f"{'backbone':<20}{'adapted':>12}{'K':>4}{'separate s':>11}{'shared s':>9}{'ratio':>8}"
          f"{'stacked s':>10}{'ratio':>8}")  # fmt: skip
    for name in ("efficientnet_lite0", "vit_tiny_random"):
        served = backend(name)
        n = len(served.view)
        for label, blocks in (("last 3", [n - 3, n - 2, n - 1]), ("all", list(range(n)))):
            for k in (2, 5, 10):
                sets = [AdapterSet.build(served.view, blocks, AdapterConfig()) for _ in range(k)]
                for adapters in sets:
                    adapters.eval()
                batches = [images[i : i + BATCH] for i in range(0, len(images), BATCH)]
                separate = timed(lambda: [served.forward(b, s) for b in batches for s in sets])  # noqa: B023
                shared = timed(lambda: [served.forward_many(b, sets, stack=False) for b in batches])  # noqa: B023
                stacked = timed(lambda: [served.forward_many(b, sets, stack=True) for b in batches])  # noqa: B023
                print(
                    f"{name:<20}{label:>12}{k:>4}{separate:>11.1f}{shared:>9.1f}"
                    f"{separate / shared:>8.2f}{stacked:>10.1f}{separate / stacked:>8.2f}"
                )


if __name__ == "__main__":
    main()

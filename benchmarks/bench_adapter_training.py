"""One epoch of adapter training with adapters in the last blocks: cached input of the
first adapted block against the full forward from images.

The frozen prefix has no gradients either way, so the full forward costs prefix
forward + suffix forward/backward while the cached one costs suffix forward/backward.
The limits printed are (1) 1/f, with f the share of forward FLOPs in the adapted
blocks and head, and (2) (1 + 2f) / 3f, the same with backward counted as twice the
forward of the suffix. Offline default training images, batch 32, SGD.

    .venv/bin/python benchmarks/bench_adapter_training.py
"""

from __future__ import annotations

import os
import tempfile
import time

import torch
from common import backend, machine, offline_stream
from torch.utils.flop_counter import FlopCounterMode

from cl_bench.models.adapters import AdapterConfig, AdapterSet
from cl_bench.models.feature_cache import FeatureCache
from cl_bench.utils.files import CACHE_ENV

BATCH = 32


def epoch(served, images, labels, adapters, head) -> float:
    optimiser = torch.optim.SGD([*adapters.parameters(), *head.parameters()], lr=0.01)
    adapters.train()
    start = time.perf_counter()
    for i in range(0, len(images), BATCH):
        logits = head(served.forward(images[i : i + BATCH], adapters))
        loss = torch.nn.functional.cross_entropy(logits, labels[i : i + BATCH])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return time.perf_counter() - start


def adapted_share(served, images, adapters) -> float:
    """Forward FLOPs of the adapted blocks and head, as a share of the whole forward."""
    start = adapters.first_block()
    x = served.backbone.preprocess(images)
    with torch.no_grad(), FlopCounterMode(display=False) as total:
        h = served.view.stem(x)
        for index in range(len(served.view)):
            h = served.view.run_block(index, h, adapters.at(index))
        served.view.head(h)
    with torch.no_grad(), FlopCounterMode(display=False) as suffix:
        served.forward_from(served._run_frozen(images, start), start, adapters)
    # _run_frozen ran inside the second counter too: subtract the prefix.
    with torch.no_grad(), FlopCounterMode(display=False) as prefix:
        served._run_frozen(images, start)
    return (suffix.get_total_flops() - prefix.get_total_flops()) / total.get_total_flops()


def main() -> None:
    os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="clbench-bench-")
    stream = offline_stream()
    train = [t for t, _ in stream.experiences()]
    images = torch.cat([t.images for t in train])
    labels = torch.cat([t.labels for t in train])
    print(f"machine: {machine()}; {len(images)} training images, 64 px, batch {BATCH}")
    print(f"{'backbone':<20}{'adapted':>10}{'full s':>8}{'cached s':>9}{'fill s':>7}"
          f"{'speed-up':>9}{'f':>7}{'1/f':>7}{'(1+2f)/3f':>10}")  # fmt: skip
    for name, blocks in [("efficientnet_lite0", [-3, -2, -1]), ("efficientnet_lite0", [-1]),
                         ("vit_tiny_random", [-2, -1]), ("vit_tiny_random", [-1])]:  # fmt: skip
        served = backend(name)
        n = len(served.view)
        picked = [b % n for b in blocks]
        head = torch.nn.Linear(served.num_features, stream.info.num_classes)
        torch.manual_seed(0)
        adapters = AdapterSet.build(served.view, picked, AdapterConfig())
        served.feature_cache = FeatureCache(enabled=False)
        full = epoch(served, images, labels, adapters, head)
        served.feature_cache = FeatureCache()
        served.register(stream.data.images)
        start = time.perf_counter()
        served.block_input(images[:1], adapters.first_block())  # fills the whole entry
        fill = time.perf_counter() - start
        cached = epoch(served, images, labels, adapters, head)
        f = adapted_share(served, images[:BATCH], adapters)
        label = f"{len(picked)} of {n}"
        print(
            f"{name:<20}{label:>10}{full:>8.1f}{cached:>9.1f}{fill:>7.1f}{full / cached:>9.1f}"
            f"{f:>7.3f}{1 / f:>7.1f}{(1 + 2 * f) / (3 * f):>10.1f}"
        )


if __name__ == "__main__":
    main()

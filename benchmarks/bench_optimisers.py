"""Adam and SGD on a CPU: torch's three implementations (one tensor at a time, foreach,
fused) on the head shapes the head-only strategies train, with the parameters each
reaches after the same steps. Prints seconds per 1000 steps (the best of ``--repeats``
interleaved runs, so that a busy machine's noise is not read as a speed-up) and the
largest difference from the single-tensor result:
``python benchmarks/bench_optimisers.py [--steps N] [--repeats R]``."""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

HEADS = {  # name: the trained module, as the strategies build it on Lite0 (1280 features)
    "oca head (MLP 1280-512-128)": lambda: nn.Sequential(
        nn.Linear(1280, 512), nn.ReLU(), nn.Linear(512, 128)
    ),
    "linear head (1280 -> 50)": lambda: nn.Linear(1280, 50),
}
OPTIMISERS = {
    "Adam": lambda params, **kind: torch.optim.Adam(params, lr=1e-3, weight_decay=5e-4, **kind),
    "SGD": lambda params, **kind: torch.optim.SGD(
        params, lr=0.05, momentum=0.9, weight_decay=5e-4, **kind
    ),
}
KINDS = {
    "single-tensor": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}


def train(head_name: str, optimiser_name: str, kind: dict, steps: int) -> tuple[float, list]:
    torch.manual_seed(0)
    head = HEADS[head_name]()
    optimiser = OPTIMISERS[optimiser_name](list(head.parameters()), **kind)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(steps, 64, 1280, generator=generator)
    start = time.perf_counter()
    for step in range(steps):
        loss = head(inputs[step]).square().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return time.perf_counter() - start, [p.detach().clone() for p in head.parameters()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps")
    print(
        f"{'head':30} {'optimiser':9} {'kind':14} {'s/1000 steps':>12} {'x single':>8} "
        f"{'max |diff|':>10}"
    )
    for head_name in HEADS:
        for optimiser_name in OPTIMISERS:
            best = dict.fromkeys(KINDS, float("inf"))
            params = {}
            for _ in range(args.repeats):  # interleaved: each kind sees the same noise
                for kind_name, kind in KINDS.items():
                    seconds, params[kind_name] = train(head_name, optimiser_name, kind, args.steps)
                    best[kind_name] = min(best[kind_name], seconds)
            for kind_name in KINDS:
                diff = max(
                    float((a - b).abs().max())
                    for a, b in zip(params[kind_name], params["single-tensor"], strict=True)
                )
                print(
                    f"{head_name:30} {optimiser_name:9} {kind_name:14} "
                    f"{1000 * best[kind_name] / args.steps:12.2f} "
                    f"{best['single-tensor'] / best[kind_name]:8.2f} {diff:10.2e}"
                )


if __name__ == "__main__":
    main()

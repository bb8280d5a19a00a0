"""What ``runtime.log`` costs a run without a logger (issue 34: "nothing measurable"):
the time of one call, against the time of the smallest training step it sits in (a
linear head's SGD step on a batch of 128 Lite0 features, finetune-head's step).

    .venv/bin/python benchmarks/bench_tracking.py
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from cl_bench.training.strategy import Runtime

CALLS = 1_000_000


def per_call(function, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.set_num_threads(1)
    runtime = Runtime(torch.device("cpu"), seed=0)
    loss = torch.tensor(1.0)
    log = per_call(lambda: runtime.log("head/loss", loss), CALLS)
    head = torch.nn.Linear(1280, 50)
    optimiser = torch.optim.SGD(head.parameters(), lr=0.05, momentum=0.9)
    features, labels = torch.randn(128, 1280), torch.randint(0, 50, (128,))

    def step() -> None:
        value = F.cross_entropy(head(features), labels)
        optimiser.zero_grad(set_to_none=True)
        value.backward()
        optimiser.step()

    step_time = per_call(step, 2000)
    print(f"runtime.log without a logger: {log * 1e9:.0f} ns a call ({CALLS} calls)")
    print(f"a finetune-head SGD step (batch 128, 1280 -> 50, 1 thread): {step_time * 1e6:.0f} us")
    print(f"share of the step: {log / step_time:.4%}")


if __name__ == "__main__":
    main()

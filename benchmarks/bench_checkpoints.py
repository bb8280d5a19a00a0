"""What per-experience checkpoints cost (issue 32): the time a run spends saving them
and the size of the file, for SEMA and MOS on the offline default (target: under 5% of
the run's time).

    .venv/bin/python benchmarks/bench_checkpoints.py [--strategies sema mos] [--threads 1]

Each strategy runs twice in this process on a warm cache: once with checkpoints (the
default), once without; the time of each checkpoint (making the strategy's state and
the run's progress, serialising them, writing the file atomically) is measured
directly, so the share does not rest on the difference of two noisy wall times (which
is printed too).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cl_bench.experiments.checkpoints as checkpoints
from cl_bench.experiments.runs import RunSpec, evaluate_run
from cl_bench.training.registry import Registry


def measure(strategy: str, threads: int, folder: Path) -> dict[str, float]:
    registry = Registry.discover()
    spent: list[float] = []
    sizes: list[int] = []
    real = checkpoints.Checkpoints.save

    def timed(self: checkpoints.Checkpoints, progress) -> None:
        start = time.perf_counter()
        real(self, progress)
        spent.append(time.perf_counter() - start)
        sizes.append(self.path.stat().st_size)

    spec = RunSpec(strategy=strategy, stream="offline-mix", backbone="efficientnet_lite0",
                   seed=1993, threads=threads, checkpoints=folder,
                   keep_checkpoints=True)  # fmt: skip
    evaluate_run(spec, registry, say=lambda _: None)  # warm the caches
    start = time.perf_counter()
    without = evaluate_run(RunSpec(**{**vars(spec), "save_checkpoints": False}), registry)
    plain = time.perf_counter() - start
    checkpoints.Checkpoints.save = timed
    try:
        start = time.perf_counter()
        with_checkpoints = evaluate_run(RunSpec(**{**vars(spec), "resume": False}), registry,
                                        say=lambda _: None)  # fmt: skip
        saved = time.perf_counter() - start
    finally:
        checkpoints.Checkpoints.save = real
    assert with_checkpoints["metrics"] == without["metrics"]
    return {"run_s": saved, "plain_run_s": plain, "writes_s": sum(spent), "writes": len(spent),
            "largest_mib": max(sizes) / 2**20}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["sema", "mos"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("| strategy | run (s) | without checkpoints (s) | checkpoint writes (s) | share | "
          "largest checkpoint (MiB) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for strategy in args.strategies:
        with tempfile.TemporaryDirectory() as folder:
            m = measure(strategy, args.threads, Path(folder))
        print(f"| {strategy} | {m['run_s']:.1f} | {m['plain_run_s']:.1f} | "
              f"{m['writes_s']:.2f} ({m['writes']:.0f} writes) | "
              f"{m['writes_s'] / m['run_s']:.1%} | {m['largest_mib']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()

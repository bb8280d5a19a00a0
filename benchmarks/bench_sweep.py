"""Sweep throughput: one grid with 1 and 2 local workers, and on a local Ray instance.

The grid is simplecil and finetune-head x ``--seeds`` seeds from 1993 (10 by default:
20 runs) on the full offline default. A fresh cache is filled first (stream prepared,
frozen features computed: a one-off cost that every later sweep reuses), so the figures
are runs, not cache fills.
Each sweep writes into a fresh folder, so nothing is skipped; its wall time includes
starting the workers and writing records and heat maps. Ray's start-up is timed apart
from its sweep, and its records are checked against the local ones.

    .venv/bin/python benchmarks/bench_sweep.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import machine

from cl_bench.experiments.executors import Executor, LocalExecutor, RayExecutor, import_ray
from cl_bench.experiments.runs import RunSpec, evaluate_run
from cl_bench.experiments.sweep import run_sweep
from cl_bench.results.records import iter_records
from cl_bench.training.registry import Registry
from cl_bench.utils.files import CACHE_ENV

STRATEGIES = ("simplecil", "finetune-head")


def grid(seeds: int) -> list[RunSpec]:
    return [RunSpec(s, "offline-mix", "efficientnet_lite0", seed, device="cpu")
            for s in STRATEGIES for seed in range(1993, 1993 + seeds)]  # fmt: skip


def timed_sweep(executor: Executor, output: Path, runs: list[RunSpec]) -> tuple[float, list[float]]:
    """Wall time of the whole sweep, and each run's own time in its worker."""
    start = time.perf_counter()
    outcomes = list(run_sweep(runs, output, executor))
    wall = time.perf_counter() - start
    failed = [o.error for o in outcomes if o.status != "ran"]
    if failed:
        raise SystemExit(f"runs did not complete: {failed}")
    return wall, [o.seconds or 0.0 for o in outcomes]


def metrics(output: Path) -> dict[str, dict]:
    return {str(p.relative_to(output)): r["metrics"] for p, r in iter_records(output)}


def row(name: str, wall: float, seconds: list[float], reference: float | None) -> None:
    ratio = f"{wall / reference:>12.2f}" if reference else f"{'':>12}"
    print(f"{name:<28}{wall:>8.1f}{60 * len(seconds) / wall:>10.2f}"
          f"{sum(seconds) / len(seconds):>10.1f}{ratio}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    runs = grid(parser.parse_args().seeds)
    work = Path(tempfile.mkdtemp(prefix="clbench-bench-sweep-"))
    os.environ[CACHE_ENV] = str(work / "cache")
    start = time.perf_counter()
    # no checkpoint left behind, or the first sweep's run of it would resume from there
    warm_up = RunSpec("simplecil", "offline-mix", "efficientnet_lite0", 1993, device="cpu",
                      save_checkpoints=False)  # fmt: skip
    evaluate_run(warm_up, Registry.discover())
    seeds = sorted({spec.seed for spec in runs})
    print(f"machine: {machine()}; grid: {' + '.join(STRATEGIES)} x seeds "
          f"{seeds[0]}-{seeds[-1]}, full offline default ({len(runs)} runs)")  # fmt: skip
    print(f"cache fill (prepare stream, frozen features, one run): "
          f"{time.perf_counter() - start:.1f} s, not counted below")  # fmt: skip
    print(f"{'executor':<28}{'wall s':>8}{'runs/min':>10}{'run s':>10}{'vs local 2':>12}")
    results = {}
    for workers in (1, 2):
        results[workers] = timed_sweep(LocalExecutor(workers), work / f"local{workers}", runs)
    reference = results[2][0]
    for workers in (1, 2):
        row(f"local, {workers} worker{'s' if workers > 1 else ''}", *results[workers], reference)

    ray = import_ray()
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths
    os.environ["RAY_TMPDIR"] = ray_tmp
    try:
        start = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False)
        startup = time.perf_counter() - start
        wall, seconds = timed_sweep(RayExecutor(workers=2), work / "ray", runs)
        start = time.perf_counter()
        ray.shutdown()
        shutdown = time.perf_counter() - start
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    row("ray, 2 CPUs (sweep)", wall, seconds, reference)
    row("ray, 2 CPUs (+ start, stop)", wall + startup + shutdown, seconds, reference)
    print(f"ray start-up {startup:.1f} s, shutdown {shutdown:.1f} s")
    same = metrics(work / "local1") == metrics(work / "local2") == metrics(work / "ray")
    print(f"metrics identical across the three sweeps: {'yes' if same else 'NO'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""SEMA on the full offline default: wall time with and without the frozen-feature cache.

Both runs use the prepared (decoded, resized) stream from clbench's cache, so the only
difference is whether frozen computation (the backbone up to the first adapted block,
and the pooled features) is read from the feature cache or recomputed. The share of
the uncached time that the cache removes is printed, with the frozen work done in
each run (the backend's counters). The end-to-end time of the README command, cold and
warm, is measured by ``bench_offline_default.py --strategies sema``. Usage:

    .venv/bin/python benchmarks/bench_sema.py [--seed 1993] [--limit-per-class N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import machine

from cl_bench.data.streams import build_stream
from cl_bench.evaluation.metrics import summarise
from cl_bench.evaluation.protocol import run
from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.models.backend import Backend
from cl_bench.models.feature_cache import FeatureCache
from cl_bench.training.registry import Registry
from cl_bench.utils.config import build_config


def timed_sema(registry: Registry, *, seed: int, limit: int | None, store: FeatureCache):
    stream_spec = registry.stream("offline-mix")
    backend = Backend(
        registry.backbone("efficientnet_lite0").load(
            BackboneOptions(image_size=stream_spec.resolution)
        ),
        store,
    )
    spec = registry.strategy("sema")
    start = time.perf_counter()
    stream = build_stream(stream_spec, seed=seed, limit_per_class=limit)
    config = build_config(spec.strategy.Config, {})
    result = run(spec, stream=stream, backbone=backend, config=config, seed=seed)
    wall = time.perf_counter() - start
    return wall, result, summarise(result.correct, result.test_counts), backend.stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--limit-per-class", type=int, default=None)
    args = parser.parse_args()
    registry = Registry.discover()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureCache(root=Path(tmp))
        timed_sema(registry, seed=args.seed, limit=args.limit_per_class, store=store)  # fill
        rows = {
            "feature cache": timed_sema(
                registry, seed=args.seed, limit=args.limit_per_class, store=store
            ),
            "no feature cache": timed_sema(
                registry, seed=args.seed, limit=args.limit_per_class,
                store=FeatureCache(enabled=False),
            ),
        }  # fmt: skip
    print(f"{'run':<18}{'wall s':>8}{'train s':>9}{'test s':>8}{'last acc':>10}"
          f"{'frozen images':>15}{'frozen blocks':>15}{'from cache':>12}")  # fmt: skip
    for name, (wall, result, metrics, stats) in rows.items():
        print(
            f"{name:<18}{wall:>8.1f}{sum(result.train_seconds):>9.1f}"
            f"{sum(result.eval_seconds):>8.1f}{metrics['last_accuracy']:>10.2f}"
            f"{stats.images_forwarded:>15}{stats.block_evaluations:>15}"
            f"{stats.images_from_cache:>12}"
        )
    cached, uncached = rows["feature cache"], rows["no feature cache"]
    same = cached[2] == uncached[2]
    print(f"share of the uncached wall time removed by the cache: {1 - cached[0] / uncached[0]:.1%}"
          f"; speed-up {uncached[0] / cached[0]:.2f}x; identical metrics: {same}")  # fmt: skip


if __name__ == "__main__":
    main()

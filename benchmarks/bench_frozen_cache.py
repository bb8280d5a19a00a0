"""Frozen-feature strategies over one stream, with the feature cache and without.

Three strategies (simplecil, finetune-head and the template plugin's nearest-mean
strategy, a third-party distribution) run one after another in one process, as a
sweep worker would, on the full offline default. Reports per run the images pushed
through the frozen backbone and the wall time; the target is that the second and
third strategy cost under 10% of the first when the cache is on.

    .venv/bin/python benchmarks/bench_frozen_cache.py
"""

from __future__ import annotations

import os
import tempfile

from common import install_template_plugin, machine, offline_stream

from cl_bench.experiments.runs import RunSpec, evaluate_run
from cl_bench.models.feature_cache import FeatureCache
from cl_bench.training.registry import Registry
from cl_bench.utils.files import CACHE_ENV

STRATEGIES = ["simplecil", "finetune-head", "template-ncm"]


def sweep(registry: Registry, use_cache: bool) -> list[dict]:
    return [
        evaluate_run(RunSpec(name, "offline-mix", "efficientnet_lite0", 1993, device="cpu",
                             use_cache=use_cache), registry)
        for name in STRATEGIES
    ]  # fmt: skip


def main() -> None:
    install_template_plugin()
    os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="clbench-bench-")
    offline_stream()  # prepare the stream's images first: not what this measures
    registry = Registry.discover()
    print(f"machine: {machine()}; cache: {os.environ[CACHE_ENV]} (empty feature cache)")
    print(f"{'cache':<6}{'strategy':<15}{'images fwd':>11}{'block evals':>12}{'wall s':>8}"
          f"{'vs first':>9}{'last acc':>9}")  # fmt: skip
    for use_cache in (False, True):
        records = sweep(registry, use_cache)
        first = records[0]["resources"]["wall_seconds"]
        for name, record in zip(STRATEGIES, records, strict=True):
            res = record["resources"]
            print(
                f"{'on' if use_cache else 'off':<6}{name:<15}{res['frozen_images_forwarded']:>11}"
                f"{res['frozen_block_evaluations']:>12}{res['wall_seconds']:>8.1f}"
                f"{res['wall_seconds'] / first:>9.2f}{record['metrics']['last_accuracy']:>9.2f}"
            )
        total = sum(r["resources"]["wall_seconds"] for r in records)
        print(f"{'':<6}{'sweep total':<15}{'':>11}{'':>12}{total:>8.1f}")
    info = FeatureCache().info()
    print(f"feature cache on disk: {info.entries} entries, {info.bytes / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

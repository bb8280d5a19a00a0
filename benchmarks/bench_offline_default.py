"""Time `clbench evaluate` end to end on the full offline default, for each baseline.

Each strategy runs twice as a fresh process: cold (empty clbench cache, so the stream's
images are decoded and resized first) and warm (prepared stream cached). Prints a
table; the figures go into docs/benchmarks/. Usage:

    .venv/bin/python benchmarks/bench_offline_default.py [--strategies simplecil finetune-head]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(strategy: str, cache: Path, output: Path) -> tuple[float, dict]:
    env = {**os.environ, "CLBENCH_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "cl_bench", "evaluate", "--strategy", strategy,
               "--output", str(output)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    [path] = (output / "offline-mix" / strategy).rglob("seed1993.json")
    return elapsed, json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["simplecil", "finetune-head"])
    args = parser.parse_args()
    print(f"{'strategy':<15}{'cold s':>9}{'warm s':>9}{'train s':>9}{'test s':>9}"
          f"{'last acc':>10}{'peak MiB':>10}")  # fmt: skip
    for strategy in args.strategies:
        with tempfile.TemporaryDirectory() as tmp:
            cache, output = Path(tmp) / "cache", Path(tmp) / "runs"
            cold, _ = timed_run(strategy, cache, output / "cold")
            warm, record = timed_run(strategy, cache, output / "warm")
        resources = record["resources"]
        print(
            f"{strategy:<15}{cold:>9.1f}{warm:>9.1f}{sum(resources['train_seconds']):>9.1f}"
            f"{sum(resources['eval_seconds']):>9.1f}{record['metrics']['last_accuracy']:>10.2f}"
            f"{resources['peak_rss_mib']:>10.0f}"
        )


if __name__ == "__main__":
    main()

"""Process start: how long ``clbench --help`` takes, what importing the evaluate command
costs, and the share of a short run spent before the run itself starts (the record's
wall time counts from the run's start; the process's from its launch).

    .venv/bin/python benchmarks/bench_startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLBENCH = [sys.executable, "-m", "cl_bench.cli"]


def best_of(repeats: int, argv: list[str]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bare = best_of(args.repeats, [sys.executable, "-c", "pass"])
    print(f"python itself:                      {bare:6.2f} s")
    print(
        f"clbench --help:                     {best_of(args.repeats, [*CLBENCH, '--help']):6.2f} s"
    )
    evaluate = [sys.executable, "-c", "import cl_bench.cli.evaluate"]
    print(f"import the evaluate command:        {best_of(args.repeats, evaluate):6.2f} s")
    with tempfile.TemporaryDirectory() as out:
        run = [
            *CLBENCH,
            "evaluate",
            "--strategy",
            "simplecil",
            "--limit-per-class",
            "2",
            "--output",
            out,
        ]
        subprocess.run(run, check=True, capture_output=True)  # warm the caches first
        for record in Path(out).rglob("*.json"):
            record.unlink()
        start = time.perf_counter()
        subprocess.run(run, check=True, capture_output=True)
        total = time.perf_counter() - start
        [record] = Path(out).rglob("*.json")
        inside = json.loads(record.read_text())["resources"]["wall_seconds"]
    print(
        f"short run (simplecil, 2 images a class, cached): {total:.2f} s in all, "
        f"{inside:.2f} s in the run, {total - inside:.2f} s outside it "
        f"({100 * (total - inside) / total:.0f}%: start-up, and writing the record)"
    )


if __name__ == "__main__":
    main()

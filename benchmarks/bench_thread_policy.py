"""What the thread policy costs: the quick start (``clbench evaluate --strategy sema``)
at one torch thread, the default, against more threads.

Each setting runs as its own ``clbench evaluate`` process (wall time from launch to
exit, as a user sees it), after one warm-up run that fills the caches, alternating the
settings so that a busy machine slows them alike. Prints a table; run it on an idle
machine.

    .venv/bin/python benchmarks/bench_thread_policy.py --repeat 3 --threads 1 2
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

CLBENCH = [sys.executable, "-m", "cl_bench.cli"]


def run(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    """Wall seconds of one ``clbench evaluate`` and the record it wrote."""
    with tempfile.TemporaryDirectory() as out:
        clock = time.perf_counter()
        subprocess.run([*CLBENCH, "evaluate", *args, "--output", out], env=env, check=True,
                       capture_output=True)  # fmt: skip
        seconds = time.perf_counter() - clock
        [path] = Path(out).rglob("seed*.json")
        return seconds, json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="sema")
    parser.add_argument("--seed", default="1993")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    env = dict(os.environ)
    base = ["--strategy", args.strategy, "--seed", args.seed]
    run(base, env)  # warm-up: prepared stream and feature cache filled
    times: dict[int, list[float]] = {t: [] for t in args.threads}
    records: dict[int, dict] = {}
    for _ in range(args.repeat):
        for threads in args.threads:
            seconds, records[threads] = run([*base, "--threads", str(threads)], env)
            times[threads].append(seconds)
    print(f"{args.strategy} seed {args.seed}, {os.cpu_count()} CPUs, best of {args.repeat}")
    print("| threads | wall (s), best | wall (s), all | last accuracy | peak RSS (MiB) |")
    print("|---:|---:|---|---:|---:|")
    first = min(times[args.threads[0]])
    for threads in args.threads:
        record = records[threads]
        print(
            f"| {threads} | {min(times[threads]):.1f} ({min(times[threads]) / first:.2f}x) | "
            + ", ".join(f"{t:.1f}" for t in times[threads])
            + f" | {record['metrics']['last_accuracy']:.2f} | "
            f"{record['resources']['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()

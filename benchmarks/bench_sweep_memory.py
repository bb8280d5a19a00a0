"""Peak memory recorded by sweep runs: runs after a large one in the same one-worker
sweep against the same runs alone (each sweep run has a fresh process, so they should
agree; before, a worker's lifetime peak was recorded).

    .venv/bin/python benchmarks/bench_sweep_memory.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CLBENCH = [sys.executable, "-m", "cl_bench.cli"]


def sweep_peaks(strategies: list[str], limit: str) -> dict[str, float]:
    """Each strategy's recorded peak RSS (MiB) from one sweep on one worker, in order."""
    with tempfile.TemporaryDirectory() as root:
        names = [arg for name in strategies for arg in ("--strategy", name)]
        subprocess.run([*CLBENCH, "sweep", *names, "--workers", "1", "--limit-per-class", limit,
                        "--output", f"{root}/runs", "--leaderboards", f"{root}/lb"],
                       check=True, capture_output=True)  # fmt: skip
        peaks = {}
        for path in Path(root, "runs").rglob("seed*.json"):
            record = json.loads(path.read_text())
            peaks[record["strategy"]] = record["resources"]["peak_rss_mib"]
        return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", default="ranpac")
    parser.add_argument("--small", nargs="+", default=["simplecil", "sema", "aper"])
    parser.add_argument("--limit-per-class", default="10")
    args = parser.parse_args()
    together = sweep_peaks([args.large, *args.small], args.limit_per_class)
    print(f"limit-per-class {args.limit_per_class}; {args.large} first in the shared sweep")
    print("| strategy | peak RSS after the large run (MiB) | alone (MiB) | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| {args.large} | {together[args.large]:.0f} | | |")
    for name in args.small:
        alone = sweep_peaks([name], args.limit_per_class)[name]
        print(f"| {name} | {together[name]:.0f} | {alone:.0f} | {together[name] / alone:.2f} |")


if __name__ == "__main__":
    main()

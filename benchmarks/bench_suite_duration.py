"""How long the test suite takes, whole and without the ``slow`` tests (the quick loop).

Runs pytest twice in fresh processes (``-m "not slow"``, then ``-m slow``) with the
set-up venv's interpreter and prints each part's wall time and its slowest tests. Run it
on an idle machine; the figures are in docs/benchmarks/test-suite.md.

    .venv/bin/python benchmarks/bench_suite_duration.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(marker: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker,
               "--durations=5"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"pytest -m {marker!r} failed:\n{done.stdout[-3000:]}")
    return seconds, done.stdout


def main() -> None:
    parts = {}
    for marker in ("not slow", "slow"):
        seconds, out = run(marker)
        [summary] = re.findall(r"^(\d+ passed.*)$", out, flags=re.MULTILINE)
        slowest = re.findall(r"^(\d+\.\d+s call .*)$", out, flags=re.MULTILINE)
        parts[marker] = seconds
        print(f"-m {marker!r}: {seconds / 60:.1f} min wall ({summary})")
        for line in slowest:
            print(f"    {line}")
    total = sum(parts.values())
    print(f"whole suite: {total / 60:.1f} min; the quick loop is {parts['not slow'] / total:.0%}")


if __name__ == "__main__":
    main()

"""Time and memory per run of every strategy, from the run records themselves.

Each record keeps what its run measured (wall, train, test and compatibility seconds,
peak resident memory, trainable parameters); this prints their means per strategy and
variant over the seeds, so strategies are compared on the runs that made the
leaderboard, one after another on the same machine. Usage:

    .venv/bin/python benchmarks/run_costs.py [--runs leaderboards/runs] [--stream offline-mix]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from statistics import mean

from cl_bench.results.records import iter_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("leaderboards/runs"))
    parser.add_argument("--stream", default="offline-mix")
    args = parser.parse_args()
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for _, record in iter_records(args.runs):
        if record["stream"] == args.stream:
            groups[(record["strategy"], record.get("variant", ""))].append(record["resources"])
    header = ["strategy", "variant", "runs", "wall s", "train s", "test s", "compat s",
              "peak RSS MiB", "trainable"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|---|---|" + "---:|" * (len(header) - 2))
    rows = []
    for (strategy, variant), resources in groups.items():
        rows.append((
            mean(r["wall_seconds"] for r in resources), strategy, variant or "default",
            len(resources),
            mean(sum(r["train_seconds"]) for r in resources),
            mean(sum(r["eval_seconds"]) for r in resources),
            mean(sum(r.get("compatibility_seconds", [0.0])) for r in resources),
            mean(r["peak_rss_mib"] for r in resources),
            max(r["trainable_parameters"] for r in resources),
        ))  # fmt: skip
    for wall, strategy, variant, n, train, test, compat, rss, params in sorted(rows):
        print(f"| {strategy} | {variant} | {n} | {wall:.1f} | {train:.1f} | {test:.1f} | "
              f"{compat:.1f} | {rss:.0f} | {params:,} |")  # fmt: skip


if __name__ == "__main__":
    main()

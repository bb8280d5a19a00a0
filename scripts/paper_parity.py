"""Paper parity: run each strategy's published setting and print clbench's numbers beside
the published ones.

For users with a GPU, the data and the published backbone's checkpoint. Every strategy
with a ``published:`` entry on CIFAR-100 B0 Inc10 and ImageNet-R B0 Inc20 runs with its
official settings for that data set (applied by ``clbench evaluate``, see ``clbench list
strategies --official``), on the backbone given, over the seeds given. Records go to
``--output`` as ``clbench evaluate`` writes them (a rerun resumes: existing records are
reused), and the table puts the mean over seeds next to every published figure for that
strategy and stream, marking those reported for the backbone used::

    python scripts/paper_parity.py --data-root ~/data --device cuda \\
        --backbone vit_base_patch16_224.augreg2_in21k_ft_in1k --weights in1k.pth

The published SEMA and SimpleCIL figures are for ViT-B/16 IN1K, those of MOS and RanPAC
for IN21K (``--backbone vit_base_patch16_224.augreg_in21k``): run it once for each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from cl_bench.cli.console import stdout, table
from cl_bench.experiments.grid import checked_runs
from cl_bench.experiments.runs import RunSpec, evaluate_run, write_run
from cl_bench.results.records import read_record
from cl_bench.results.text import mean_and_std
from cl_bench.training.registry import Registry
from cl_bench.utils.config import parse_assignments
from cl_bench.utils.errors import ClbenchError
from cl_bench.utils.files import DATA_ENV

STREAMS = ("cifar100-b0inc10", "imagenet-r-b0inc20")
# Which published backbone label each registered backbone is
PUBLISHED_LABELS = {
    "vit_base_patch16_224.augreg2_in21k_ft_in1k": "IN1K",
    "vit_base_patch16_224.augreg_in21k": "IN21K",
}


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backbone",
        default="vit_base_patch16_224.augreg2_in21k_ft_in1k",
        help="registered backbone (default: SEMA's IN1K ViT-B/16)",
    )
    parser.add_argument("--weights", type=Path, help="local checkpoint of the backbone")
    parser.add_argument("--data-root", type=Path, help=f"where the data sets are (${DATA_ENV})")
    parser.add_argument("--stream", action="append", help=f"default: {', '.join(STREAMS)}")
    parser.add_argument(
        "--strategy",
        action="append",
        help="default: every strategy with a published figure on the stream",
    )
    parser.add_argument("--seed", type=int, action="append", help="default: 1993")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=Path("parity-runs"))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STRATEGY.KEY=VALUE",
        help="change a setting of one strategy (the run is then a variant, "
        "no longer the published setting: for trying the mechanics)",
    )
    parser.add_argument(
        "--limit-per-class",
        type=int,
        help="at most N training images per class (quick trials only)",
    )
    return parser.parse_args(argv)  # fmt: skip


def planned_runs(arguments: argparse.Namespace, registry: Registry) -> list[RunSpec]:
    """One run per stream x strategy x seed, in that order."""
    scoped: dict[str, dict[str, str]] = {}
    for strategy_key, value in parse_assignments(arguments.set).items():
        strategy, dot, key = strategy_key.rpartition(".")
        if not dot:
            raise ClbenchError(f"--set {strategy_key}={value}: write STRATEGY.KEY=VALUE")
        scoped.setdefault(strategy, {})[key] = value
    runs = []
    for stream in arguments.stream or STREAMS:
        published = {entry.strategy for entry in registry.stream(stream).published}
        for strategy in arguments.strategy or sorted(published & set(registry.strategies)):
            for seed in arguments.seed or [1993]:
                runs.append(RunSpec(
                    strategy=strategy, stream=stream, backbone=arguments.backbone, seed=seed,
                    overrides=scoped.get(strategy, {}), weights=arguments.weights,
                    device=arguments.device, limit_per_class=arguments.limit_per_class,
                ))  # fmt: skip
    return runs


def run_all(runs: list[RunSpec], registry: Registry, output: Path) -> list[tuple[RunSpec, dict]]:
    """Each run with its record: read if it exists, otherwise run and written."""
    runs = checked_runs(runs, registry)  # every name and setting checked before any compute
    records = []
    for number, spec in enumerate(runs, 1):
        path = spec.record_path(output)
        if path.is_file():
            stdout.print(f"[{number}/{len(runs)}] {spec.label}: record exists, reused")
            records.append((spec, read_record(path)))
            continue
        stdout.print(f"[{number}/{len(runs)}] {spec.label}")
        record = evaluate_run(spec, registry)
        write_run(output, record)
        records.append((spec, record))
    return records


def comparison_rows(
    records: list[tuple[RunSpec, dict]], registry: Registry, backbone: str
) -> list[tuple[str, ...]]:
    """One row per (stream, strategy) and published figure: clbench's mean over seeds
    (± std) beside the figure, and whether it was published for the backbone used."""
    label = PUBLISHED_LABELS.get(backbone)
    grouped: dict[tuple[str, str], list[dict]] = {}
    for spec, record in records:
        grouped.setdefault((spec.stream, spec.strategy), []).append(record)
    rows = []
    for (stream, strategy), group in grouped.items():
        ours = [_summary(group, "average_incremental_accuracy"), _summary(group, "last_accuracy")]
        variant = group[0]["variant"] or "published setting"
        published = [p for p in registry.stream(stream).published if p.strategy == strategy]
        for entry in published or [None]:
            if entry is None:
                rows.append((stream, strategy, variant, *ours, "-", "-", "-", "no figure"))
                continue
            same = label is not None and label in entry.backbone.upper()
            rows.append((stream, strategy, variant, *ours, _number(entry.average),
                         _number(entry.last), f"{entry.backbone}{' (used)' if same else ''}",
                         entry.source))  # fmt: skip
    return rows


def _summary(records: list[dict], metric: str) -> str:
    values = [record["metrics"][metric] for record in records]
    spread = statistics.stdev(values) if len(values) > 1 else float("nan")
    return mean_and_std(statistics.fmean(values), spread)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.data_root is not None:
        os.environ[DATA_ENV] = str(arguments.data_root.absolute())
    registry = Registry.discover()
    try:
        records = run_all(planned_runs(arguments, registry), registry, arguments.output)
    except ClbenchError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    columns = ["stream", "strategy", "variant", "clbench avg", "clbench last",
               "published avg", "published last", "published backbone", "source"]  # fmt: skip
    rows = comparison_rows(records, registry, arguments.backbone)
    title = f"clbench with {arguments.backbone} against the published figures (%)"
    stdout.print(table(title, columns, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

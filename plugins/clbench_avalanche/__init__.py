"""Avalanche's training strategies as clbench strategies, ``avalanche:<name>``: on the same
streams, the same shared backbone and feature cache, and scored by the same metrics as
every other row. Registered through the ``cl_bench`` entry point like any plugin; which
strategies run, with which model and which baselines values, is in ``catalogue``."""

from __future__ import annotations

from importlib.metadata import version

from cl_bench import Origin, Range, StrategySpec, hookimpl
from clbench_avalanche.catalogue import CATALOGUE, Entry
from clbench_avalanche.config import FINETUNE_LR
from clbench_avalanche.strategy import strategy_class

PREFIX = "avalanche:"
AVALANCHE = "https://github.com/ContinualAI/avalanche"


def search_space(entry: Entry) -> dict[str, Range]:
    """The learning rate (its default a decade each way) for the strategies trained by
    SGD, and the entry's own weights; none for StreamingLDA (fitted in one pass) and
    the unavailable ones."""
    if entry.unavailable or entry.model == "slda":
        return {}
    lr = entry.training.get("lr", FINETUNE_LR)
    return {"lr": Range.around(lr)} | {key: Range.around(v) for key, v in entry.search.items()}


@hookimpl
def cl_bench_strategies() -> list[StrategySpec]:
    specs = []
    for entry in CATALOGUE:
        if entry.unavailable:
            description = f"unavailable: {entry.unavailable}"
        else:
            description = f"Avalanche {entry.class_name}: {entry.paper}"
        strategy = strategy_class(entry)
        origin = Origin(
            entry.paper,
            AVALANCHE,
            f"avalanche-lib {version('avalanche-lib')}",
            "head-only training on the shared frozen backbone (see the catalogue)",
        )
        specs.append(StrategySpec(PREFIX + entry.name, description, strategy, entry.reference,
                                  search=search_space(entry), origin=origin))  # fmt: skip
    return specs

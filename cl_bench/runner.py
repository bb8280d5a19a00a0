"""Runs one strategy over one stream: train on each experience, then test on all seen so far."""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from cl_bench.backend import Backend
from cl_bench.errors import PluginError
from cl_bench.experience import Experience
from cl_bench.strategy import Runtime, Strategy, StrategySpec
from cl_bench.streams import Stream

EVAL_BATCH_SIZE = 256


@dataclass
class RunResult:
    correct: list[list[int]] = field(default_factory=list)  # correct[t][j], j <= t
    test_counts: list[int] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    peak_accelerator_mib: float | None = None
    trainable_parameters: int = 0
    total_parameters: int = 0
    strategy_report: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run(
    spec: StrategySpec,
    *,
    stream: Stream,
    backbone: Backend,
    config: Any,
    seed: int,
    track: Callable[..., Iterator[Any]] | None = None,
) -> RunResult:
    """Train and evaluate ``spec``'s strategy; exceptions it raises become a PluginError."""
    seed_everything(seed)
    backbone.register(stream.data.images)
    runtime = Runtime(device=backbone.device, seed=seed)
    if track is not None:
        runtime.track = track
    strategy = _call(
        spec,
        "set-up",
        lambda: spec.strategy(
            backbone=backbone, stream=stream.info, config=config, runtime=runtime
        ),
    )
    result = RunResult()
    tests: list[Experience] = []
    if backbone.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(backbone.device)
    experiences = runtime.track(
        stream.experiences(), total=stream.info.num_experiences, description="experiences"
    )
    for train, test in experiences:
        tests.append(test)
        result.test_counts.append(len(test))
        start = time.perf_counter()
        _call(spec, f"training on experience {train.index}", partial(strategy.train, train))
        result.train_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        result.correct.append([_count_correct(spec, strategy, seen, runtime) for seen in tests])
        result.eval_seconds.append(time.perf_counter() - start)
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if backbone.device.type == "cuda":
        result.peak_accelerator_mib = torch.cuda.max_memory_allocated(backbone.device) / 2**20
    result.strategy_report = _call(spec, "reporting", strategy.report)
    learned = _parameters(strategy.learned_modules())
    result.trainable_parameters = sum(p.numel() for p in learned)  # what the strategy learned
    result.total_parameters = backbone.num_parameters() + sum(p.numel() for p in learned)
    return result


def _count_correct(
    spec: StrategySpec, strategy: Strategy, test: Experience, runtime: Runtime
) -> int:
    correct = 0
    batches = test.batches(EVAL_BATCH_SIZE)
    for images, labels in runtime.track(
        batches, total=test.num_batches(EVAL_BATCH_SIZE), description=f"testing on {test.index}"
    ):
        predicted = _call(
            spec, f"predicting on experience {test.index}", partial(strategy.predict, images)
        )
        if predicted.shape != labels.shape:
            raise PluginError(
                f"strategy {spec.name!r}: predict returned shape {tuple(predicted.shape)} "
                f"for {len(labels)} images; it must return one label per image"
            )
        correct += int((predicted.cpu() == labels).sum())
    return correct


def _call(spec: StrategySpec, what: str, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except (KeyboardInterrupt, PluginError):
        raise
    except Exception as error:
        raise PluginError(
            f"strategy {spec.name!r} failed during {what}: {type(error).__name__}: {error}"
        ) from error


def _parameters(modules: list[torch.nn.Module]) -> list[torch.nn.Parameter]:
    unique: dict[int, torch.nn.Parameter] = {}
    for module in modules:
        for parameter in module.parameters():
            unique[id(parameter)] = parameter
    return list(unique.values())

"""Runs one strategy over one stream: train on each experience, then test on all seen so far."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from cl_bench.data.experience import Experience
from cl_bench.data.streams import Stream
from cl_bench.evaluation.compatibility import CompatibilityTracker
from cl_bench.models.backend import Backend
from cl_bench.training.strategy import Runtime, Strategy, StrategySpec
from cl_bench.utils.errors import PluginError
from cl_bench.utils.memory import peak_rss_mib


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
    rehearsal_samples: int = 0
    strategy_report: dict[str, Any] = field(default_factory=dict)
    compatibility: dict[str, Any] = field(default_factory=dict)
    compatibility_seconds: list[float] = field(default_factory=list)


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
    tracker = CompatibilityTracker()
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
        _check_finite(spec, strategy, train.index)
        result.train_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        correct, embedded = _evaluate_seen(spec, strategy, tests, runtime, backbone.batch_size)
        result.correct.append(correct)
        result.eval_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        into_space = partial(_into_space, spec, strategy, backbone.device)
        tracker.update(*embedded, into_space=into_space)
        result.compatibility_seconds.append(time.perf_counter() - start)
    result.peak_rss_mib = peak_rss_mib()
    if backbone.device.type == "cuda":
        result.peak_accelerator_mib = torch.cuda.max_memory_allocated(backbone.device) / 2**20
    result.strategy_report = _call(spec, "reporting", strategy.report)
    result.compatibility = tracker.summary()
    result.rehearsal_samples = _call(spec, "reporting", strategy.rehearsal_samples)
    learned = _parameters(strategy.learned_modules())
    result.trainable_parameters = sum(p.numel() for p in learned)  # what the strategy learned
    result.total_parameters = backbone.num_parameters() + sum(p.numel() for p in learned)
    return result


def _evaluate_seen(
    spec: StrategySpec,
    strategy: Strategy,
    tests: list[Experience],
    runtime: Runtime,
    batch_size: int,
) -> tuple[list[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Correct predictions per seen experience, and the current model's embeddings of
    every test image seen so far with their labels and ids: one pass over the test
    images (``predict_and_embed``), whose embeddings compatibility scoring then reuses."""
    correct, features, labels = [], [], []
    after = len(tests) - 1
    for test in tests:
        hits = 0
        for images, batch_labels in runtime.track(
            test.batches(batch_size),
            total=test.num_batches(batch_size),
            description=f"testing on {test.index}",
        ):
            predicted, embedded = _call(
                spec,
                f"predicting on experience {test.index}",
                partial(strategy.predict_and_embed, images),
            )
            _check_outputs(spec, predicted, embedded, len(images), test.index, after)
            hits += int((predicted.cpu() == batch_labels).sum())
            features.append(embedded.detach().float().cpu())
            labels.append(batch_labels)
        correct.append(hits)
    ids = torch.arange(sum(len(test) for test in tests))  # positions in experience order
    return correct, (torch.cat(features), torch.cat(labels), ids)


def _check_outputs(
    spec: StrategySpec,
    predicted: torch.Tensor,
    embedded: torch.Tensor,
    count: int,
    experience: int,
    after: int,
) -> None:
    if predicted.shape != (count,):
        raise PluginError(
            f"strategy {spec.name!r}: predict returned shape {tuple(predicted.shape)} "
            f"for {count} images; it must return one label per image"
        )
    if embedded.dim() != 2 or len(embedded) != count:
        raise PluginError(
            f"strategy {spec.name!r}: embed returned shape {tuple(embedded.shape)} "
            f"for {count} images; it must return one feature row per image"
        )
    if not torch.isfinite(embedded).all():
        raise PluginError(
            f"strategy {spec.name!r}: embed returned NaN or infinite features on "
            f"experience {experience} after training on experience {after}"
        )


@torch.no_grad()
def _into_space(
    spec: StrategySpec, strategy: Strategy, device: torch.device, features: torch.Tensor, step: int
) -> torch.Tensor:
    mapped = _call(
        spec,
        f"mapping features into the space of model {step}",
        partial(strategy.to_model_space, features.to(device), step),
    )
    return mapped.detach().float().cpu()


def _call(spec: StrategySpec, what: str, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except (KeyboardInterrupt, PluginError):
        raise
    except Exception as error:
        raise PluginError(
            f"strategy {spec.name!r} failed during {what}: {type(error).__name__}: {error}"
        ) from error


def _check_finite(spec: StrategySpec, strategy: Strategy, experience: int) -> None:
    """A strategy whose loss went NaN or infinite leaves such weights: stop there, with
    the strategy and experience named, rather than score a broken model."""
    broken = [
        name
        for module in strategy.learned_modules()
        for name, parameter in module.named_parameters()
        if not torch.isfinite(parameter).all()
    ]
    if broken:
        shown = ", ".join(broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
        raise PluginError(
            f"strategy {spec.name!r} diverged while training on experience {experience}: "
            f"NaN or infinite weights in {shown}; its loss was not finite (a smaller "
            "learning rate, --set lr=..., usually helps)"
        )


def _parameters(modules: list[torch.nn.Module]) -> list[torch.nn.Parameter]:
    unique: dict[int, torch.nn.Parameter] = {}
    for module in modules:
        for parameter in module.parameters():
            unique[id(parameter)] = parameter
    return list(unique.values())

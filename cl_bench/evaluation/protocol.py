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

from cl_bench.data.experience import Experience
from cl_bench.data.streams import Stream
from cl_bench.evaluation.compatibility import CompatibilityTracker
from cl_bench.models.backend import Backend
from cl_bench.training.strategy import Runtime, Strategy, StrategySpec
from cl_bench.utils.errors import PluginError

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
        result.correct.append([_count_correct(spec, strategy, seen, runtime) for seen in tests])
        result.eval_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        into_space = partial(_into_space, spec, strategy, backbone.device)
        tracker.update(*_embed_seen(spec, strategy, tests, runtime), into_space=into_space)
        result.compatibility_seconds.append(time.perf_counter() - start)
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if backbone.device.type == "cuda":
        result.peak_accelerator_mib = torch.cuda.max_memory_allocated(backbone.device) / 2**20
    result.strategy_report = _call(spec, "reporting", strategy.report)
    result.compatibility = tracker.summary()
    result.rehearsal_samples = _call(spec, "reporting", strategy.rehearsal_samples)
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


def _embed_seen(
    spec: StrategySpec, strategy: Strategy, tests: list[Experience], runtime: Runtime
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The current model's embeddings of every test image seen so far, labels and ids."""
    features, labels = [], []
    for test in tests:
        for images, batch_labels in runtime.track(
            test.batches(EVAL_BATCH_SIZE),
            total=test.num_batches(EVAL_BATCH_SIZE),
            description=f"embedding {test.index}",
        ):
            embedded = _call(
                spec, f"embedding experience {test.index}", partial(strategy.embed, images)
            )
            if embedded.dim() != 2 or len(embedded) != len(images):
                raise PluginError(
                    f"strategy {spec.name!r}: embed returned shape {tuple(embedded.shape)} "
                    f"for {len(images)} images; it must return one feature row per image"
                )
            if not torch.isfinite(embedded).all():
                raise PluginError(
                    f"strategy {spec.name!r}: embed returned NaN or infinite features on "
                    f"experience {test.index} after training on experience {len(tests) - 1}"
                )
            features.append(embedded.detach().float().cpu())
            labels.append(batch_labels)
    ids = torch.arange(sum(len(test) for test in tests))  # positions in experience order
    return torch.cat(features), torch.cat(labels), ids


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

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
from cl_bench.training.state import StateError
from cl_bench.training.strategy import Runtime, Strategy, StrategySpec
from cl_bench.training.tracking import ExperienceDone, Loggers
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
    strategy: Strategy | None = None  # the trained strategy (for --save-model)


@dataclass
class Progress:
    """Where a run stands after an experience: everything it needs to go on from there
    and end as the uninterrupted run ends (a checkpoint holds it, as plain data)."""

    experience: int  # the last experience trained and evaluated
    strategy: dict[str, Any]
    random_states: dict[str, Any]
    correct: list[list[int]]
    test_counts: list[int]
    train_seconds: list[float]
    eval_seconds: list[float]
    compatibility_seconds: list[float]
    compatibility: dict[str, Any]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def random_states(runtime: Runtime) -> dict[str, Any]:
    """Every generator a run draws from, as plain data."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states = {
        "run": runtime.generator.get_state(),
        "augmentation": runtime.augmentation_generator.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(runtime: Runtime, states: dict[str, Any]) -> None:
    runtime.generator.set_state(states["run"])
    runtime.augmentation_generator.set_state(states["augmentation"])
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def run(
    spec: StrategySpec,
    *,
    stream: Stream,
    backbone: Backend,
    config: Any,
    seed: int,
    track: Callable[..., Iterator[Any]] | None = None,
    resume: Progress | None = None,
    after_experience: Callable[[Callable[[], Progress]], None] | None = None,
    loggers: Loggers | None = None,
) -> RunResult:
    """Train and evaluate ``spec``'s strategy; exceptions it raises become a PluginError.

    ``after_experience`` is called after every experience but the last with a function
    that makes the run's :class:`Progress` (to write a checkpoint; making it may raise
    :class:`~cl_bench.training.state.StateError`); ``resume`` is such a progress to go
    on from. ``loggers`` hear the strategy's training values and each experience's
    results (:mod:`cl_bench.training.tracking`)."""
    seed_everything(seed)
    backbone.register(stream.data.images)
    runtime = Runtime(device=backbone.device, seed=seed, loggers=loggers or Loggers())
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
    if resume is not None:
        _call(spec, "loading its saved state", partial(strategy.load_state_dict, resume.strategy))
        _resume(result, tracker, runtime, resume)
    if backbone.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(backbone.device)
    experiences = runtime.track(
        stream.experiences(), total=stream.info.num_experiences, description="experiences"
    )
    for train, test in experiences:
        tests.append(test)
        if resume is not None and train.index <= resume.experience:
            continue  # learned before the run was interrupted
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
        if runtime.loggers:
            runtime.loggers.experience(_experience_done(train.index, result, tracker))
        if after_experience is not None and train.index < stream.info.num_experiences - 1:
            after_experience(
                partial(_progress, spec, strategy, runtime, result, tracker, train.index)
            )
    result.peak_rss_mib = peak_rss_mib()
    if backbone.device.type == "cuda":
        result.peak_accelerator_mib = torch.cuda.max_memory_allocated(backbone.device) / 2**20
    result.strategy_report = _call(spec, "reporting", strategy.report)
    result.compatibility = tracker.summary()
    result.rehearsal_samples = _call(spec, "reporting", strategy.rehearsal_samples)
    learned = _parameters(strategy.learned_modules())
    result.trainable_parameters = sum(p.numel() for p in learned)  # what the strategy learned
    result.total_parameters = backbone.num_parameters() + sum(p.numel() for p in learned)
    result.strategy = strategy
    return result


def _experience_done(index: int, result: RunResult,
                     tracker: CompatibilityTracker) -> ExperienceDone:  # fmt: skip
    correct, counts = result.correct[-1], result.test_counts
    return ExperienceDone(
        index=index,
        accuracy=[100.0 * c / n for c, n in zip(correct, counts, strict=False)],
        average=100.0 * sum(correct) / sum(counts[: len(correct)]),
        train_seconds=result.train_seconds[-1],
        eval_seconds=result.eval_seconds[-1],
        compatibility={
            score: {key: value for key, value in summary.items() if key != "matrix"}
            for score, summary in tracker.summary().items()
        },
    )


def _progress(spec: StrategySpec, strategy: Strategy, runtime: Runtime, result: RunResult,
              tracker: CompatibilityTracker, experience: int) -> Progress:  # fmt: skip
    try:
        state = strategy.state_dict()
    except StateError:
        raise  # a state that cannot be saved: the run goes on without checkpoints
    except Exception as error:
        raise PluginError(f"strategy {spec.name!r} failed while saving its state: "
                          f"{type(error).__name__}: {error}") from error  # fmt: skip
    return Progress(
        experience=experience,
        strategy=state,
        random_states=random_states(runtime),
        correct=[list(row) for row in result.correct],
        test_counts=list(result.test_counts),
        train_seconds=list(result.train_seconds),
        eval_seconds=list(result.eval_seconds),
        compatibility_seconds=list(result.compatibility_seconds),
        compatibility=tracker.state_dict(),
    )


def _resume(result: RunResult, tracker: CompatibilityTracker, runtime: Runtime,
            progress: Progress) -> None:  # fmt: skip
    result.correct = [list(row) for row in progress.correct]
    result.test_counts = list(progress.test_counts)
    result.train_seconds = list(progress.train_seconds)
    result.eval_seconds = list(progress.eval_seconds)
    result.compatibility_seconds = list(progress.compatibility_seconds)
    tracker.load_state_dict(progress.compatibility)
    restore_random_states(runtime, progress.random_states)


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

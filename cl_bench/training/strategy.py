"""The strategy contract.

A strategy is set up once per run with the frozen backbone, the stream's static
facts, its validated config and the runtime; then, for each experience in order, the
runner calls :meth:`Strategy.train` once and evaluates with :meth:`Strategy.predict`
on the test sets of all experiences seen so far. :meth:`Strategy.embed` returns the
representation the strategy would use for retrieval; compatibility metrics read it.

Hyper-parameters live in a dataclass named ``Config`` on the strategy class: its
defaults are the strategy's default config, and ``--set key=value`` overrides fields
(unknown keys are an error). Learned state should end in ``_`` (scikit-learn style).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from torch import nn

from cl_bench.data.experience import Experience, StreamInfo

if TYPE_CHECKING:
    from cl_bench.models.backend import Backend

T = TypeVar("T")


@dataclass(frozen=True)
class NoConfig:
    """For strategies without hyper-parameters."""


def _no_progress(
    iterable: Iterable[T], total: int | None = None, description: str = ""
) -> Iterator[T]:
    return iter(iterable)


@dataclass
class Runtime:
    """Where and how to compute: device, the run's seed and RNG, and progress reporting."""

    device: torch.device
    seed: int
    generator: torch.Generator = field(init=False)
    track: Callable[..., Iterator[Any]] = _no_progress

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)


class Strategy(abc.ABC):
    """Base class of every strategy. Subclass it, define ``Config``, implement the three methods."""

    Config: ClassVar[type] = NoConfig

    def __init__(self, *, backbone: Backend, stream: StreamInfo, config: Any, runtime: Runtime):
        self.backbone = backbone
        self.stream = stream
        self.config = config
        self.runtime = runtime

    @abc.abstractmethod
    def train(self, experience: Experience) -> None:
        """Learn from one experience; previous experiences' data is no longer available."""

    @abc.abstractmethod
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Labels (int64, one per image) over all classes seen so far."""

    @abc.abstractmethod
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The representation (N x D float) this strategy would use for retrieval."""

    def predict_and_embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``predict`` and ``embed`` of one batch. Evaluation calls only this, once per
        test batch, and compatibility scoring reuses the embeddings: a strategy whose
        prediction is computed from its embedding should override it to run its network
        once (the default runs both methods)."""
        return self.predict(images), self.embed(images)

    def to_model_space(self, features: torch.Tensor, step: int) -> torch.Tensor:
        """``embed`` output of the current model, expressed in the space of the model of
        experience ``step`` (earlier or equal), so that it can be compared with a gallery
        that model embedded. By default the spaces are taken to be the same (compared on
        their common leading dimensions); strategies that learn mappings between model
        spaces (backward transforms) override this."""
        return features

    def rehearsal_samples(self) -> int:
        """How many samples of past experiences (images or their features) the strategy
        keeps for training: 0 for exemplar-free methods. Recorded and shown beside the
        accuracy, because rehearsal and exemplar-free methods are not compared as equals."""
        return 0

    def report(self) -> dict[str, Any]:
        """Strategy-specific facts for the run record (JSON-able); empty by default."""
        return {}

    def learned_modules(self) -> list[nn.Module]:
        """Modules this strategy owns, for parameter counts; by default its nn.Module attributes."""
        return [
            value
            for value in vars(self).values()
            if isinstance(value, nn.Module) and value is not self.backbone.model
        ]


@dataclass(frozen=True)
class StrategySpec:
    """What a plugin registers: a name, a one-line description and the Strategy subclass.

    ``reference=True`` marks a method that is not continual (joint training on all data
    seen so far, say): its records and leaderboard rows say so, so that it is read as a
    bound, never ranked among the continual methods unawares.
    """

    name: str
    description: str
    strategy: type[Strategy]
    reference: bool = False

    def __post_init__(self) -> None:
        for key in ("name", "description"):
            if not isinstance(getattr(self, key), str):
                raise TypeError(f"strategy {key} must be a string, got {getattr(self, key)!r}")
        if not isinstance(self.reference, bool):
            raise TypeError(f"strategy {self.name!r}: reference must be true or false")
        if not self.name or self.name != self.name.strip():
            raise ValueError(f"strategy name {self.name!r} must be non-empty without spaces")
        if not (isinstance(self.strategy, type) and issubclass(self.strategy, Strategy)):
            raise TypeError(f"strategy {self.name!r}: {self.strategy!r} is not a Strategy subclass")

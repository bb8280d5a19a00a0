"""The strategy contract.

A strategy is set up once per run with the frozen backbone, the stream's static
facts, its validated config and the runtime; then, for each experience in order, the
runner calls :meth:`Strategy.train` once and evaluates with :meth:`Strategy.predict`
on the test sets of all experiences seen so far. :meth:`Strategy.embed` returns the
representation the strategy would use for retrieval; compatibility metrics read it.

Hyper-parameters live in a dataclass named ``Config`` on the strategy class: its
defaults are the strategy's default config, and ``--set key=value`` overrides fields
(unknown keys are an error). Learned state should end in ``_`` (scikit-learn style).

A strategy's recipe is its config plus two declarations: ``augmentation``, the training
transform of its official code (switched by a boolean config field ``augment``), and
``StrategySpec.official``, the settings its official code uses per stream family, which
``clbench evaluate`` applies when a stream of that family is chosen.
"""

from __future__ import annotations

import abc
import dataclasses
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from cl_bench.data.augmentation import Augmentation, training_inputs
from cl_bench.data.experience import Experience, StreamInfo
from cl_bench.data.spec import STREAM_FAMILIES
from cl_bench.training.search import Choice, Dimension, Range
from cl_bench.training.state import StateError, decode_state, encode_state, is_learned
from cl_bench.training.tracking import Loggers
from cl_bench.utils.config import build_config

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
    """Where and how to compute: device, the run's seed and RNG, and progress reporting.

    Augmentation draws from its own generator, so that switching it on changes the
    training images and nothing else (the shuffles and initialisations stay the same).
    """

    device: torch.device
    seed: int
    generator: torch.Generator = field(init=False)
    augmentation_generator: torch.Generator = field(init=False)
    track: Callable[..., Iterator[Any]] = _no_progress
    loggers: Loggers = field(default_factory=Loggers)
    _steps: Counter[str] = field(default_factory=Counter, init=False, repr=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)
        child = np.random.SeedSequence([self.seed, 1]).generate_state(1, np.uint64)[0]
        self.augmentation_generator = torch.Generator().manual_seed(int(child))

    def log(self, name: str, value: float | torch.Tensor, step: int | None = None) -> None:
        """Report a training value (``"sema/functional_loss"``) to the run's loggers, at
        ``step`` or at the next step of its own count. Without a logger this returns at
        once: a tensor is not even read (on a GPU, reading it would wait for it)."""
        if not self.loggers:
            return
        if step is None:
            step = self._steps[name]
            self._steps[name] += 1
        number = value.item() if isinstance(value, torch.Tensor) else float(value)
        self.loggers.scalar(name, number, int(step))


class Strategy(abc.ABC):
    """Base class of every strategy. Subclass it, define ``Config``, implement the three methods."""

    Config: ClassVar[type] = NoConfig
    # The training transform of the strategy's official code; a strategy that declares
    # one has a boolean config field ``augment`` that switches it on.
    augmentation: ClassVar[Augmentation | None] = None

    def __init__(self, *, backbone: Backend, stream: StreamInfo, config: Any, runtime: Runtime):
        self.backbone = backbone
        self.stream = stream
        self.config = config
        self.runtime = runtime

    @property
    def train_transform(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The declared augmentation seeded by the run, or None when it is off."""
        if self.augmentation is None or not self.config.augment:
            return None
        augmentation, generator = self.augmentation, self.runtime.augmentation_generator
        return lambda images: augmentation(images, generator)

    def training_inputs(
        self, images: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``index -> compute(images[index])`` for a training loop, the images augmented
        afresh for every batch when the recipe augments (computed once otherwise)."""
        return training_inputs(images, compute, self.train_transform)

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

    def state_dict(self) -> dict[str, Any]:
        """Everything the strategy has learned, as plain data (tensors, numbers, strings
        and containers of them; see :mod:`cl_bench.training.state`): checkpoints and
        ``--save-model`` files hold it. By default: every attribute whose name ends in
        ``_``, modules and other objects with a ``state_dict`` as their state dicts.

        The contract: loading it into a fresh instance made with the same arguments
        (:meth:`load_state_dict`) gives the same predictions and embeddings, bit for bit,
        and training on from there gives what the uninterrupted run gives. A strategy
        whose modules are built while it trains overrides :meth:`load_state_dict` to
        rebuild them (from what its state records) before calling ``super()``.
        """
        return {name: encode_state(value, f"{type(self).__name__}.{name}")
                for name, value in vars(self).items() if is_learned(name)}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Set every learned attribute from ``state`` (:meth:`state_dict`'s output),
        loading modules into the instance's own: their devices stay the instance's."""
        missing = sorted(name for name in vars(self) if is_learned(name) and name not in state)
        if missing:
            raise StateError(f"the saved state of {type(self).__name__} lacks "
                             f"{', '.join(missing)}: it was saved by another version")  # fmt: skip
        for name, saved in state.items():
            where = f"{type(self).__name__}.{name}"
            value = decode_state(getattr(self, name, None), saved, where, self.backbone)
            setattr(self, name, value)

    def learned_modules(self) -> list[nn.Module]:
        """Modules this strategy owns, for parameter counts; by default its nn.Module attributes."""
        return [
            value
            for value in vars(self).values()
            if isinstance(value, nn.Module) and value is not self.backbone.model
        ]


@dataclass(frozen=True)
class Origin:
    """The paper a strategy implements and the official code it follows, as the docs'
    strategy tables show them (generated from the registry, so they cannot drift).

    ``departures`` says in one line where the strategy departs from that code; the
    reasons belong in the strategy module's docstring. (Whether it agrees with that code
    is measured, not declared: benchmarks/parity_vs_official.py.)
    """

    paper: str
    code: str = ""  # the official code's address
    commit: str = ""  # the commit (or release) followed
    departures: str = ""

    def __post_init__(self) -> None:
        for key, value in vars(self).items():
            if not isinstance(value, str):
                raise TypeError(f"Origin.{key} must be a string, got {type(value).__name__}")
        if not self.paper:
            raise ValueError("Origin.paper must name the paper (authors, venue, year)")


@dataclass(frozen=True)
class OfficialSettings:
    """The config values a strategy's official code uses for one stream family, and the
    file they come from: ``clbench evaluate`` applies them on that family's streams."""

    family: str
    settings: Mapping[str, Any] = field(hash=False)
    source: str

    def __post_init__(self) -> None:
        if self.family not in STREAM_FAMILIES:
            raise ValueError(f"official settings for {self.family!r}: the stream families are "
                             f"{', '.join(STREAM_FAMILIES)}")  # fmt: skip
        if not isinstance(self.source, str) or not self.source:
            raise TypeError(f"official settings for {self.family!r} must name their source")
        object.__setattr__(self, "settings", dict(self.settings))


@dataclass(frozen=True)
class StrategySpec:
    """What a plugin registers: a name, a one-line description and the Strategy subclass.

    ``official`` lists the settings of the strategy's official code per stream family
    (at most one entry a family); streams of other families run the Config defaults.

    ``reference=True`` marks a method that is not continual (joint training on all data
    seen so far, say): its records and leaderboard rows say so, so that it is read as a
    bound, never ranked among the continual methods unawares.

    ``origin`` names the paper and the official code (:class:`Origin`).
    """

    name: str
    description: str
    strategy: type[Strategy]
    reference: bool = False
    official: tuple[OfficialSettings, ...] = ()
    origin: Origin | None = None
    # the settings `clbench tune` searches, and within what (cl_bench.training.search)
    search: Mapping[str, Dimension] = field(default_factory=dict, compare=False)

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
        object.__setattr__(self, "official", tuple(self.official))
        if not all(isinstance(d, Range | Choice) for d in self.search.values()):
            raise TypeError(f"strategy {self.name!r}: a search space holds Range and Choice")
        object.__setattr__(self, "search", MappingProxyType(dict(self.search)))
        if self.origin is not None and not isinstance(self.origin, Origin):
            raise TypeError(f"strategy {self.name!r}: origin must be an Origin")
        self._check_recipe()

    def _check_recipe(self) -> None:
        """An augmenting strategy's ``augment`` switch and every official setting are
        valid config fields: a typo fails at registration, not in a user's run."""
        if self.strategy.augmentation is None and not self.official:
            return  # (some plugins' Config raises: an unavailable strategy explains itself)
        config = self.strategy.Config
        if self.strategy.augmentation is not None:
            hints = typing.get_type_hints(config) if dataclasses.is_dataclass(config) else {}
            if hints.get("augment") is not bool:
                raise TypeError(f"strategy {self.name!r} declares an augmentation, so its Config "
                                "needs a field `augment: bool` that switches it")  # fmt: skip
        families = [entry.family for entry in self.official]
        if len(set(families)) != len(families):
            raise ValueError(f"strategy {self.name!r} gives official settings twice for a family")
        for entry in self.official:
            build_config(config, entry.settings)

    def official_for(self, family: str | None) -> OfficialSettings | None:
        """The official settings for a stream family, if the strategy's code has them."""
        return next((entry for entry in self.official if entry.family == family), None)

"""One clbench strategy class for every Avalanche strategy: the Avalanche template trains
on the experience as Avalanche read it from the stream; clbench evaluates through the
template's own forward pass, so its predictions are the ones Avalanche would score.

The model is the shared backend's frozen backbone (its pooled features from the
feature cache, or with ``--set adapters=true`` the backbone with a trainable adapter set
on every block) followed by a head: an ``IncrementalClassifier`` that grows with the
classes seen, or a linear layer over all the stream's classes for strategies whose loss
needs every output from the start (iCaRL, DER); StreamingLDA gets the features alone.
How each constructor takes them (``model=``, or iCaRL's ``feature_extractor=`` and
``classifier=``, or ``slda_model=``) is read from its signature. The backbone is never
copied: strategies that deep-copy their model (LwF keeps the previous one) copy the
head and adapters and share the backend. Avalanche is imported when a strategy is
built, never when clbench starts.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from cl_bench import (
    AdapterConfig,
    AdapterSet,
    Backend,
    ConfigError,
    Experience,
    StateError,
    Strategy,
)
from clbench_avalanche.catalogue import Entry
from clbench_avalanche.config import SHARED_KEYS, make_config
from clbench_avalanche.state import load_template_state, template_state


class BackboneFeatures(nn.Module):
    """uint8 images -> pooled features: frozen (cached), or through trainable adapters."""

    def __init__(self, backend: Backend, adapters: AdapterSet | None):
        super().__init__()
        self.backend = backend  # not a module: the shared backbone is never a submodule
        self.adapters = adapters

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.adapters is None:
            return self.backend.features(images)
        return self.backend.forward(images, self.adapters)

    def __deepcopy__(self, memo: dict[int, Any]) -> BackboneFeatures:
        """A copy with its own adapters and the same shared backend (and feature cache)."""
        return BackboneFeatures(self.backend, copy.deepcopy(self.adapters, memo))


@dataclass(frozen=True)
class LegacyScenarioInfo:
    """What Avalanche's legacy ``experience.benchmark`` offers and iCaRL reads: classes per
    experience and their order (clbench labels are already in stream order)."""

    n_classes_per_exp: list[int]
    classes_order: list[int]


class _LazyConfig(type(Strategy)):
    """``Config`` is read from Avalanche's signature on first use, not at start-up."""

    @property
    def Config(cls) -> type:
        if cls._config is None:
            entry = cls.entry
            if entry.unavailable:
                raise ConfigError(f"avalanche:{entry.name} is unavailable: {entry.unavailable}")
            cls._config = make_config(entry, avalanche_class(entry))
        return cls._config


def avalanche_class(entry: Entry) -> type:
    return getattr(importlib.import_module(entry.module), entry.class_name)


class AvalancheStrategy(Strategy, metaclass=_LazyConfig):
    entry: ClassVar[Entry]
    _config: ClassVar[type | None] = None

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.template_ = self._build()

    def train(self, experience: Experience) -> None:
        if experience.origin is None:
            raise ValueError("an Avalanche strategy needs the experience as Avalanche read it")
        origin = experience.origin()
        if "benchmark" not in vars(origin):  # iCaRL reads the legacy scenario API
            sizes = [len(classes) for classes in self.stream.classes_per_experience]
            origin.benchmark = LegacyScenarioInfo(sizes, list(range(sum(sizes))))
        with warnings.catch_warnings():
            # Avalanche 0.6 indexes with a list (its utils.py); torch warns every batch
            warnings.filterwarnings("ignore", "Using a non-tuple sequence", UserWarning)
            self.template_.train(origin)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.outputs(images).argmax(1)

    @torch.no_grad()
    def outputs(self, images: torch.Tensor) -> torch.Tensor:
        """The template's own forward pass on a batch, as its evaluation runs it."""
        template = self.template_
        template.model.eval()
        zeros = torch.zeros(len(images), dtype=torch.int64, device=self.backbone.device)
        template.mbatch = [images.to(self.backbone.device), zeros, zeros]
        return template.forward()

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The live model's features (GDumb replaces its model each experience)."""
        [features] = [m for m in self.template_.model.modules() if isinstance(m, BackboneFeatures)]
        return features(images)

    def state_dict(self) -> dict[str, Any]:
        """The template's model, optimiser, clock and plugins' memory (see state.py)."""
        return {"template": template_state(self.template_, self.backbone)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state) != {"template"}:
            raise StateError(f"the saved state of avalanche:{self.entry.name} is not an "
                             "Avalanche template's: it was saved by another version")  # fmt: skip
        load_template_state(self.template_, state["template"], self.backbone)

    def learned_modules(self) -> list[nn.Module]:
        """The template's live model: strategies such as GDumb replace it each experience."""
        return [self.template_.model]

    def rehearsal_samples(self) -> int:
        """Samples kept from past experiences, wherever this strategy keeps them."""
        return sum(map(_stored_samples, [self.template_, *self.template_.plugins]))

    # --- construction ---------------------------------------------------------------
    def _build(self) -> Any:
        config, backend, entry = self.config, self.backbone, self.entry
        adapters = None
        if getattr(config, "adapters", False):
            adapter = AdapterConfig(bottleneck=16, scale=0.1, dropout=0.1, init="lora")
            view = backend.view
            adapters = AdapterSet.build(view, range(len(view)), adapter).to(backend.device)
        features = BackboneFeatures(backend, adapters)
        cls = avalanche_class(entry)
        arguments = {key: value for key, value in vars(config).items() if key not in SHARED_KEYS}
        arguments.update(
            train_mb_size=config.batch_size,
            train_epochs=config.epochs,
            eval_mb_size=256,
            device=backend.device,
            evaluator=self._evaluator(),
            plugins=[loss_reporter(self.runtime)],
        )
        accepted = inspect.signature(cls.__init__).parameters  # fmt: skip
        if entry.model == "slda":
            arguments.update(
                slda_model=features,
                criterion=nn.CrossEntropyLoss(),
                input_size=backend.num_features,
                num_classes=self.stream.num_classes,
            )
            return cls(**arguments)  # fmt: skip
        if entry.model == "all-classes":
            head = nn.Linear(backend.num_features, self.stream.num_classes)
        else:
            from avalanche.models import IncrementalClassifier

            first = len(self.stream.classes_per_experience[0])
            head = IncrementalClassifier(backend.num_features, initial_out_features=first)
        head.to(backend.device)
        if "feature_extractor" in accepted:  # iCaRL: its own model of the two parts
            arguments.update(feature_extractor=features, classifier=head,
                             buffer_transform=None)  # fmt: skip
            parameters = [*head.parameters(), *features.parameters()]
        else:
            model = nn.Sequential(features, head).to(backend.device)
            arguments.update(model=model, criterion=nn.CrossEntropyLoss())
            parameters = list(model.parameters())
        return cls(optimizer=self._optimiser(parameters), **arguments)

    def _optimiser(self, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
        config = self.config
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)  # fmt: skip

    @staticmethod
    def _evaluator() -> Any:
        """No metrics and no loggers: clbench measures (an empty EvaluationPlugin)."""
        from avalanche.training.plugins import EvaluationPlugin

        with warnings.catch_warnings():  # "no loggers specified": none are wanted
            warnings.simplefilter("ignore", UserWarning)
            return EvaluationPlugin(loggers=[])


def loss_reporter(runtime: Any) -> Any:
    """An Avalanche plugin that reports each training step's loss to the run's loggers
    (``avalanche/loss``); it holds no state of its own (state.py skips it)."""
    from avalanche.core import SupervisedPlugin

    class _LossReporter(SupervisedPlugin):
        def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
            if strategy.loss is not None:
                runtime.log("avalanche/loss", strategy.loss.detach())

    _LossReporter.__qualname__ = _LossReporter.__name__ = "LossReporter"
    return _LossReporter()


def _stored_samples(holder: Any) -> int:
    """The memory that Avalanche's strategies and plugins keep, by where each keeps it:
    a storage policy (Replay, GDumb, DER, ER-ACE), per-experience tensors (GEM),
    per-experience datasets (A-GEM), per-class exemplars (iCaRL), or every sample seen
    (Cumulative)."""
    storage = getattr(holder, "storage_policy", None)
    if storage is not None:
        return len(storage.buffer)
    if isinstance(getattr(holder, "memory_x", None), dict):
        return sum(map(len, holder.memory_x.values()))
    if isinstance(getattr(holder, "buffers", None), list):
        return sum(map(len, holder.buffers))
    if isinstance(getattr(holder, "x_memory", None), list):
        return sum(map(len, holder.x_memory))
    if type(holder).__name__ == "Cumulative" and holder.dataset is not None:
        return len(holder.dataset)
    return 0


def strategy_class(entry: Entry) -> type[AvalancheStrategy]:
    """A subclass of :class:`AvalancheStrategy` for one catalogue entry."""
    name = "Avalanche" + "".join(part.title() for part in entry.name.split("_"))
    return _LazyConfig(name, (AvalancheStrategy,), {"entry": entry, "_config": None,
                                                    "__module__": __name__})  # fmt: skip

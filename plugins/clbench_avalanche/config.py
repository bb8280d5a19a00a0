"""A strategy's ``Config`` built from its Avalanche constructor signature.

Every keyword of the constructor that is a hyper-parameter (not the model, optimiser,
criterion, plugins or evaluator, which clbench provides) becomes a ``--set`` key, with
Avalanche's default, or the baselines' value where the catalogue gives one. Keys every
entry shares: ``epochs`` and ``batch_size``, and for those trained by SGD the optimiser
and ``adapters`` (finetune-head's values, so that ``avalanche:naive`` and
``finetune-head`` train alike; an entry's ``training`` replaces one where it is measured
not to work, as MAS's learning rate). StreamingLDA is fitted, not trained by SGD: one
pass, as its constructor's default.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any

from cl_bench import require
from clbench_avalanche.catalogue import Entry

# What clbench supplies, or what makes no sense to set from the command line.
PROVIDED = {
    "self", "model", "optimizer", "criterion", "train_mb_size", "train_epochs",
    "eval_mb_size", "device", "plugins", "evaluator", "eval_every", "feature_extractor",
    "classifier", "slda_model", "input_size", "num_classes", "output_layer_name",
    "buffer_transform", "verbose", "peval_mode", "kwargs",
}  # fmt: skip

SHARED: tuple[tuple[str, type, Any], ...] = (("epochs", int, 10), ("batch_size", int, 64))
FINETUNE_LR = 0.05  # finetune-head's, so that avalanche:naive trains as it does
SGD: tuple[tuple[str, type, Any], ...] = (
    ("lr", float, FINETUNE_LR),
    ("momentum", float, 0.9),
    ("weight_decay", float, 5e-4),
    ("adapters", bool, False),  # also train an adapter set on every block
)
SHARED_KEYS = {name for name, _, _ in SHARED + SGD}


def _field_type(value: Any, annotation: Any = inspect.Parameter.empty) -> Any:
    """The key's type: its default's, or for a None default the constructor's annotation
    (DER's ``batch_size_mem: Optional[int]`` must stay an int when set: a float batch
    size stops PyTorch's DataLoader)."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(inner) == 1 and inner[0] in (bool, int, float, str):
            return inner[0] | None
    return float | None  # an unannotated None default: a number when set


def _validate(config: Any) -> None:
    for key in ("epochs", "batch_size"):
        require(getattr(config, key) >= 1, key, "must be at least 1")
    if hasattr(config, "lr"):
        require(config.lr > 0, "lr", "must be positive")
        require(0 <= config.momentum < 1, "momentum", "must be in [0, 1)")
        require(config.weight_decay >= 0, "weight_decay", "must be non-negative")


def make_config(entry: Entry, strategy_class: type) -> type:
    """The frozen dataclass of ``entry``'s hyper-parameters, named after the strategy."""
    shared = SHARED + SGD if entry.model != "slda" else (("epochs", int, 1), SHARED[1])
    fields: list[tuple[str, Any, Any]] = [
        (name, kind, dataclasses.field(default=entry.training.get(name, value)))
        for name, kind, value in shared
    ]
    taken = SHARED_KEYS
    for parameter in inspect.signature(strategy_class.__init__).parameters.values():
        name = parameter.name
        if name in PROVIDED or parameter.kind is parameter.VAR_KEYWORD or name in taken:
            continue
        if name in entry.baselines:
            value = entry.baselines[name]
        elif parameter.default is not inspect.Parameter.empty:
            value = parameter.default
        else:
            raise TypeError(
                f"avalanche:{entry.name}: {entry.class_name}({name}=...) has no default and "
                "the catalogue gives none"
            )
        kind = _field_type(value, parameter.annotation)
        fields.append((name, kind, dataclasses.field(default=value)))
    return dataclasses.make_dataclass(
        f"{entry.class_name}Config", fields, frozen=True,
        namespace={"__post_init__": _validate, "__module__": __name__},
    )  # fmt: skip

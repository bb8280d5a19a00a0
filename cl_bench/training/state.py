"""A strategy's learned state as plain data, for checkpoints and saved models.

The state is a tree of tensors, numbers, strings, None and lists, tuples and dicts of
them, so that it loads with ``torch.load(weights_only=True)``: reading a checkpoint or a
model file runs no code from it. Modules and other objects with a ``state_dict`` are
stored as their state dicts and loaded back into the objects a fresh strategy already
holds. A module a strategy builds while it trains (a head that grows, an adapter added
per task) has no counterpart in a fresh instance: a registered type (:func:`rebuildable`)
is rebuilt from what its ``describe`` saved, by name from this module's registry only (a
saved file never names code to import); any other, the strategy rebuilds in its own
``load_state_dict`` before loading (the contract: :meth:`Strategy.state_dict`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from cl_bench.models.adapters import Adapter, AdapterConfig, AdapterSet
from cl_bench.models.view import Place
from cl_bench.utils.errors import ClbenchError

if TYPE_CHECKING:
    from cl_bench.models.backend import Backend

MARK = "__clbench_state__"  # the key of an encoded non-plain value
PLAIN = (bool, int, float, str, type(None))


class StateError(ClbenchError):
    """A strategy state that cannot be saved as plain data, or cannot be loaded back."""


@dataclass(frozen=True)
class Rebuilder:
    """How to build a module of ``kind`` again from plain data: ``describe(module)`` says
    what its constructor needs (not its tensors), ``rebuild(described, backend)`` builds
    an equal one, whose tensors then load from its state dict."""

    kind: type[nn.Module]
    describe: Callable[[Any], dict[str, Any]]
    rebuild: Callable[[dict[str, Any], Backend], nn.Module]


REBUILDERS: dict[str, Rebuilder] = {}


def rebuildable(name: str, rebuilder: Rebuilder) -> None:
    """Register a module type that a strategy may build while it trains, so that a saved
    state rebuilds it in a fresh strategy (nn.Linear and the adapter modules are)."""
    if name in REBUILDERS and REBUILDERS[name].kind is not rebuilder.kind:
        raise ValueError(f"{name!r} already names {REBUILDERS[name].kind.__name__}")
    REBUILDERS[name] = rebuilder


def _rebuilder_of(module: nn.Module) -> str | None:
    return next((name for name, r in REBUILDERS.items() if type(module) is r.kind), None)


def describe(module: nn.Module, where: str) -> dict[str, Any]:
    """What rebuilds ``module`` (a registered type), without its tensors: for a
    rebuildable container's ``describe`` of its children."""
    name = _rebuilder_of(module)
    if name is None:
        raise StateError(f"{where} is a {type(module).__name__}, which is not registered as "
                         "rebuildable (cl_bench.training.state.rebuildable)")  # fmt: skip
    return {"type": name, "described": REBUILDERS[name].describe(module)}


def rebuild(description: Mapping[str, Any], backend: Backend) -> nn.Module:
    """A module built again from :func:`describe`'s output (its tensors as initialised)."""
    name = description["type"]
    if name not in REBUILDERS:
        raise StateError(f"no module type {name!r} is registered to rebuild a saved module")
    return REBUILDERS[name].rebuild(description["described"], backend)


rebuildable("linear", Rebuilder(
    nn.Linear,
    lambda m: {"in": m.in_features, "out": m.out_features, "bias": m.bias is not None},
    lambda d, _: nn.Linear(d["in"], d["out"], bias=d["bias"]),
))  # fmt: skip


def saved_length(saved: Any) -> int:
    """How many items a saved list (or ModuleList) holds: for a strategy that rebuilds
    such a list's modules before loading them."""
    if isinstance(saved, Mapping) and saved.get(MARK) in ("modules", "tuple"):
        return len(saved["value"])
    if isinstance(saved, list):
        return len(saved)
    raise StateError("the saved value is not a list")


def is_learned(name: str) -> bool:
    """Learned attributes end in ``_`` (scikit-learn style), private ones do not count."""
    return name.endswith("_") and not name.startswith("_")


def encode_state(value: Any, where: str) -> Any:
    """``value`` as plain data; ``where`` names it in errors (``Sema.head_[2]``)."""
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().clone()
        if value.device.type == "cpu":
            return tensor
        return {MARK: "tensor", "on_device": True, "value": tensor}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise StateError(f"{where}: a numpy array of Python objects is not plain data")
        return {MARK: "ndarray", "value": torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, nn.ModuleList):
        return {MARK: "modules", "value": encode_state(list(value), where)}
    if isinstance(value, nn.Module):
        encoded = {MARK: "module", "value": encode_state(dict(value.state_dict()), where),
                   "modes": _modes(value)}  # fmt: skip
        if (name := _rebuilder_of(value)) is not None:
            encoded |= {"type": name, "described": REBUILDERS[name].describe(value)}
        return encoded
    if _stateful(value):
        return {MARK: "object", "value": encode_state(value.state_dict(), where)}
    if isinstance(value, (list, tuple)):
        items = [encode_state(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else {MARK: "tuple", "value": items}
    if isinstance(value, Mapping):
        if not all(isinstance(key, PLAIN) for key in value):
            raise StateError(f"{where}: a dict's keys must be strings or numbers")
        return {key: encode_state(item, f"{where}[{key!r}]") for key, item in value.items()}
    raise StateError(
        f"{where} holds a value of type {type(value).__name__}, which a strategy state cannot "
        "hold: give that type state_dict() and load_state_dict(), or override the "
        "strategy's state_dict"
    )


def decode_state(current: Any, saved: Any, where: str, backend: Backend) -> Any:
    """``saved`` (from :func:`encode_state`) as the value to set: modules and other stateful
    objects load into ``current`` (the fresh strategy's value of the same name) when it
    has their layout, and registered module types are rebuilt when it has not."""
    if isinstance(saved, Mapping) and MARK in saved:
        kind, value = saved[MARK], saved["value"]
        if kind == "tensor":
            return value.to(backend.device)
        if kind == "ndarray":
            return value.numpy().copy()
        if kind == "tuple":
            return tuple(_items(current, value, where, backend))
        if kind == "modules":
            return nn.ModuleList(_items(current, value, where, backend))
        if kind == "module":
            return _module(current, saved, where, backend)
        if kind == "object":
            return _load_into(current, value, where, backend)
        raise StateError(f"{where}: unknown kind {kind!r} in the saved state")
    if isinstance(saved, torch.Tensor):
        return saved.to(current.device) if isinstance(current, torch.Tensor) else saved
    if isinstance(saved, list):
        return _items(current, saved, where, backend)
    if isinstance(saved, Mapping):
        old = current if isinstance(current, Mapping) else {}
        return {key: decode_state(old.get(key), item, f"{where}[{key!r}]", backend)
                for key, item in saved.items()}  # fmt: skip
    return saved


def _items(current: Any, saved: list, where: str, backend: Backend) -> list:
    old = list(current) if isinstance(current, (list, tuple, nn.ModuleList)) else []
    old += [None] * (len(saved) - len(old))
    return [decode_state(old[i], item, f"{where}[{i}]", backend) for i, item in enumerate(saved)]


def _module(current: Any, saved: Mapping[str, Any], where: str, backend: Backend) -> nn.Module:
    """Into ``current`` when it is a module of the saved layout, else rebuilt."""
    name = saved.get("type")
    if isinstance(current, nn.Module) and (name is None or _rebuilder_of(current) == name):
        state = decode_state(None, saved["value"], where, backend)
        if _fits(current, state):
            _set_modes(current, saved["modes"])
            return _load_into(current, saved["value"], where, backend)
    if name is None:
        raise StateError(
            f"{where}: the saved state holds a module that a fresh strategy does not have "
            "(it is built while training), of a type that is not registered as rebuildable "
            "(cl_bench.training.state.rebuildable): the strategy must rebuild it in "
            "load_state_dict before loading"
        )
    module = rebuild(saved, backend)
    state = decode_state(None, saved["value"], where, backend)
    devices = {t.device for t in state.values() if isinstance(t, torch.Tensor)}
    module.to(devices.pop() if len(devices) == 1 else backend.device)
    _set_modes(module, saved["modes"])
    return _load_into(module, saved["value"], where, backend)


def _modes(module: nn.Module) -> dict[str, list[str]]:
    """What a module's state dict leaves out: which submodules are training (dropout on)
    and which parameters are frozen."""
    return {
        "training": [name for name, m in module.named_modules() if m.training],
        "frozen": [name for name, p in module.named_parameters() if not p.requires_grad],
    }


def _set_modes(module: nn.Module, modes: Mapping[str, list[str]]) -> None:
    training, frozen = set(modes["training"]), set(modes["frozen"])
    for name, submodule in module.named_modules():
        submodule.training = name in training
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(name not in frozen)


def _fits(module: nn.Module, state: Mapping[str, Any]) -> bool:
    own = module.state_dict()
    return set(own) == set(state) and all(
        not isinstance(value, torch.Tensor) or own[key].shape == value.shape
        for key, value in state.items()
    )


def _load_into(current: Any, value: Any, where: str, backend: Backend) -> Any:
    if current is None or not _stateful(current):
        raise StateError(
            f"{where}: the saved state holds an object that a fresh strategy does not have "
            "(it is built while training): the strategy must rebuild it in load_state_dict "
            "before loading"
        )
    state = decode_state(None, value, where, backend)
    try:
        if isinstance(current, nn.Module):
            current.load_state_dict(state, strict=True)
        else:
            current.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as error:
        raise StateError(f"{where} does not fit the saved state: {error}") from error
    return current


def _stateful(value: Any) -> bool:
    return callable(getattr(value, "state_dict", None)) and callable(
        getattr(value, "load_state_dict", None)
    )


# --- the adapter modules strategies build while they train ------------------------------
def _describe_adapter(adapter: Adapter) -> dict[str, Any]:
    down = adapter.down
    kind = "vit" if isinstance(down, nn.Linear) else "cnn"
    widths = (down.in_features, down.out_features) if kind == "vit" else (
        down.in_channels, down.out_channels)  # fmt: skip
    out = adapter.up.out_features if kind == "vit" else adapter.up.out_channels
    stride = 1 if kind == "vit" else int(down.stride[0])
    return {"kind": kind, "in": widths[0], "bottleneck": widths[1], "out": out,
            "stride": stride, "scale": adapter.scale, "dropout": adapter.dropout.p}  # fmt: skip


def _rebuild_adapter(described: dict[str, Any], _: Backend) -> Adapter:
    place = Place(0, "", described["in"], described["out"], described["stride"])
    config = AdapterConfig(bottleneck=described["bottleneck"], scale=described["scale"],
                           dropout=described["dropout"])  # fmt: skip
    return Adapter(place, described["kind"], config)


def _describe_set(adapters: AdapterSet) -> dict[str, Any]:
    return {"places": {str(block): describe(adapters.at(block), f"the adapter at block {block}")
                       for block in adapters.blocks}}  # fmt: skip


def _rebuild_set(described: dict[str, Any], backend: Backend) -> AdapterSet:
    adapters = AdapterSet()
    for block, child in described["places"].items():
        adapters.attach(int(block), rebuild(child, backend))
    return adapters


rebuildable("adapter", Rebuilder(Adapter, _describe_adapter, _rebuild_adapter))
rebuildable("adapter-set", Rebuilder(AdapterSet, _describe_set, _rebuild_set))

"""An Avalanche template's state as plain data, so that ``avalanche:<name>`` runs write
checkpoints, resume and save models as every other strategy does.

Avalanche keeps what a strategy has learned in its own objects: the model (a head that
grows with the classes), the optimiser (Avalanche 0.6 keeps its momentum across
experiences), the clock, and each plugin's memory (replay buffers of AvalancheDatasets,
importances as ParamData, old models, GEM's tensors, StreamingLDA's statistics).
Avalanche's own checkpoints pickle the whole strategy with dill; clbench's load with
``weights_only`` (reading one runs no code), so the state is walked here instead:

- every attribute of the template and of each plugin, but the machinery in
  :data:`TRANSIENT` (set again for each experience or minibatch) and the
  EvaluationPlugin (clbench measures, Avalanche does not);
- values by type: plain values, tensors, containers, ``torch.Size`` and devices,
  ParamData, datasets as their samples (images, labels and per-sample attributes such as
  DER's logits), modules as state dicts with their plain attributes, other Avalanche
  objects (storage policies, LwF's helper) as their attributes;
- anything else is refused with its place named: a plugin whose memory this walk does
  not know stops the checkpoint instead of being left out of it.

Loading sets the same attributes on a fresh template built from the same config: the
model first (layers that grew are rebuilt at their saved shapes), then the optimiser
over the model's parameters by name, then the rest. A saved object names its class;
only classes from Avalanche's modules or this plugin's are rebuilt (bare, then given
their attributes), so a saved file cannot name other code to run.
"""

from __future__ import annotations

import copy
import importlib
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from cl_bench import Backend, LabelledImages, StateError, decode_state, encode_state

KEY = "__avalanche__"  # the key of an encoded non-plain value
PLAIN = (bool, int, float, str, type(None))
ALLOWED_MODULES = ("avalanche.", "clbench_avalanche.")
FACTORIES = {"dict": dict, "set": set, "list": list, "int": int}  # defaultdicts' defaults
TRANSIENT = frozenset({
    # saved first, on their own
    "model", "optimizer", "optimized_param_id",
    # the template's machinery, set again for each experience, minibatch or evaluation
    "plugins", "evaluator", "clock", "experience", "adapted_dataset", "dataloader",
    "mbatch", "mb_output", "loss", "current_eval_stream", "_eval_streams", "_criterion",
    "is_training", "_stop_training", "_distributed_check", "device",
    # ER-ACE's and DER's loaders over their buffers and their last replayed minibatch
    "replay_loader", "ace_criterion", "batch_logits",
    "mb_buffer_x", "mb_buffer_y", "mb_buffer_tid", "mb_buffer_out",
    # A-GEM's loader over its buffers: rebuilt from them (_rebuild_loaders)
    "buffer_dataloader", "buffer_dliter",
})  # fmt: skip
MODULE_MACHINERY = frozenset(vars(nn.Module())) | {"training"}


def template_state(template: Any, backend: Backend) -> dict[str, Any]:
    """Everything the template has learned, as plain data (see the module docstring)."""
    walk = _Walk(template, backend)
    names = {id(p): name for name, p in template.model.named_parameters()}
    return {
        "model": walk.encode(template.model, "model", root=True),
        "optimizer": _optimiser_state(template, names),
        "optimized": _optimised_names(template, names),
        "attributes": walk.attributes(template, "template"),
        "plugins": [
            {"type": _qualified(type(plugin)),
             "attributes": None if _skipped(plugin) else walk.attributes(plugin, _label(plugin))}
            for plugin in template.plugins
        ],
    }  # fmt: skip


def load_template_state(template: Any, saved: Mapping[str, Any], backend: Backend) -> None:
    """Set a fresh template (built from the same config) to :func:`template_state`'s."""
    plugins = [_qualified(type(plugin)) for plugin in template.plugins]
    saved_plugins = [entry["type"] for entry in saved["plugins"]]
    if plugins != saved_plugins:
        raise StateError(f"the saved template had the plugins {saved_plugins}, this one has "
                         f"{plugins}: it was saved by another version")  # fmt: skip
    walk = _Walk(template, backend)
    template.model = walk.decode(template.model, saved["model"], "model")
    parameters = dict(template.model.named_parameters())
    if saved["optimizer"] is not None:
        optimiser = template.optimizer
        groups = saved["optimizer"]["groups"]
        if len(groups) != len(optimiser.param_groups):
            raise StateError("the saved optimiser has another number of parameter groups")
        for group, names in zip(optimiser.param_groups, groups, strict=True):
            group["params"] = [parameters[name] for name in names]
        optimiser.load_state_dict(decode_state(None, saved["optimizer"]["state"],
                                               "optimizer", backend))  # fmt: skip
    if saved["optimized"] is not None:
        template.optimized_param_id = {name: parameters[name] for name in saved["optimized"]}
    walk.set_attributes(template, saved["attributes"], "template")
    for plugin, entry in zip(template.plugins, saved["plugins"], strict=True):
        if entry["attributes"] is not None:
            walk.set_attributes(plugin, entry["attributes"], _label(plugin))
    _rebuild_loaders(template)


class _Walk:
    """Encodes and decodes one template's values; the template, its model and the shared
    backend are saved as references, never as copies."""

    def __init__(self, template: Any, backend: Backend):
        self.template, self.backend = template, backend

    # --- saving ---------------------------------------------------------------------
    def attributes(self, holder: Any, where: str) -> dict[str, Any]:
        return {name: self.encode(value, f"{where}.{name}")
                for name, value in vars(holder).items() if name not in TRANSIENT}  # fmt: skip

    def encode(self, value: Any, where: str, root: bool = False) -> Any:
        if value is self.template:
            return {KEY: "template"}
        if value is self.backend:
            return {KEY: "backend"}
        if isinstance(value, PLAIN):
            return value
        if isinstance(value, torch.Tensor):
            return encode_state(value, where)
        if isinstance(value, torch.Size):
            return {KEY: "size", "value": list(value)}
        if isinstance(value, torch.device):
            return {KEY: "device", "value": str(value)}
        if isinstance(value, nn.Module):
            if value is self.template.model and not root:
                return {KEY: "model"}
            return self._module(value, where)
        from avalanche.benchmarks.utils import AvalancheDataset
        from avalanche.training.utils import ParamData

        if isinstance(value, AvalancheDataset):
            return self._dataset(value, where)
        if isinstance(value, ParamData):
            if value.init_function is not torch.zeros:
                raise StateError(f"{where}: a ParamData with its own init_function")
            return {KEY: "param-data", "name": value.name, "shape": list(value.shape),
                    "data": encode_state(value.data, where),
                    "device": str(value.device)}  # fmt: skip
        if isinstance(value, defaultdict):
            factory = next((n for n, f in FACTORIES.items() if value.default_factory is f), None)
            if factory is None:
                raise StateError(f"{where}: a defaultdict of {value.default_factory!r}")
            return {KEY: "defaultdict", "factory": factory, "items": self._items(value, where)}
        if isinstance(value, dict):
            return {KEY: "dict", "items": self._items(value, where)}
        if isinstance(value, (set, frozenset)):
            return {KEY: "set", "items": [self.encode(item, where) for item in value]}
        if isinstance(value, (list, tuple)):
            items = [self.encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return items if isinstance(value, list) else {KEY: "tuple", "items": items}
        if type(value).__module__.startswith(ALLOWED_MODULES):
            return {KEY: "object", "type": _qualified(type(value)),
                    "attributes": self.attributes(value, where)}  # fmt: skip
        raise StateError(
            f"{where} holds a {type(value).__name__}, which clbench cannot save as part of an "
            "Avalanche strategy's state (plugins/clbench_avalanche/state.py lists what it can)"
        )

    def _items(self, mapping: Mapping[Any, Any], where: str) -> list[list[Any]]:
        if not all(isinstance(key, PLAIN) for key in mapping):
            raise StateError(f"{where}: a dict's keys must be strings or numbers")
        return [[key, self.encode(item, f"{where}[{key!r}]")] for key, item in mapping.items()]

    def _module(self, module: nn.Module, where: str) -> dict[str, Any]:
        """Its state dict, the shapes that say which layers grew, and each submodule's
        plain attributes outside the state dict (NCM's class means, a head's mask value)."""
        state = module.state_dict()
        return {
            KEY: "module",
            "state": encode_state(module, where),
            "shapes": {key: [list(t.shape), str(t.dtype).removeprefix("torch.")]
                       for key, t in state.items()},
            "attributes": {
                name: {attribute: self.encode(value, f"{where}[{name!r}].{attribute}")
                       for attribute, value in vars(submodule).items()
                       if attribute not in MODULE_MACHINERY}
                for name, submodule in module.named_modules()
            },
        }  # fmt: skip

    def _dataset(self, dataset: Any, where: str) -> dict[str, Any]:
        """The samples themselves (images and labels, as the stream's datasets hold them)
        and every per-sample attribute, in order: what its items and batches are made of."""
        from avalanche.benchmarks.utils.flat_data import ConstantSequence

        samples = [dataset._flat_data[i] for i in range(len(dataset))]
        if not all(isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], torch.Tensor)
                   and isinstance(s[1], int) for s in samples):  # fmt: skip
            raise StateError(f"{where}: a dataset whose samples are not (image, label) pairs")
        attributes = []
        for attribute in dataset._data_attributes.values():
            values = list(attribute)
            if isinstance(attribute.data, ConstantSequence):  # task labels: kept constant,
                values = {KEY: "constant", "value": values[0] if values else 0,  # as Avalanche
                          "length": len(values)}  # concatenates only like with like  # fmt: skip
            elif values and all(isinstance(v, torch.Tensor) for v in values):
                values = {KEY: "stacked", "value": encode_state(torch.stack(values), where)}
            elif not all(isinstance(v, PLAIN) for v in values):
                raise StateError(f"{where}: the data attribute {attribute.name!r} is not plain")
            attributes.append([attribute.name, attribute.use_in_getitem, values])
        images = torch.stack([s[0] for s in samples]) if samples else None
        return {
            KEY: "dataset",
            "type": _qualified(type(dataset)),
            "images": encode_state(images, where),
            "labels": [s[1] for s in samples],
            "attributes": attributes,
        }  # fmt: skip

    # --- loading --------------------------------------------------------------------
    def set_attributes(self, holder: Any, saved: Mapping[str, Any], where: str) -> None:
        for name, value in saved.items():
            current = getattr(holder, name, None)
            setattr(holder, name, self.decode(current, value, f"{where}.{name}"))

    def decode(self, current: Any, saved: Any, where: str) -> Any:
        if isinstance(saved, list):
            old = list(current) if isinstance(current, (list, tuple)) else []
            old += [None] * (len(saved) - len(old))
            return [self.decode(old[i], item, f"{where}[{i}]") for i, item in enumerate(saved)]
        if not (isinstance(saved, Mapping) and KEY in saved):
            return decode_state(current, saved, where, self.backend)
        kind = saved[KEY]
        if kind == "template":
            return self.template
        if kind == "backend":
            return self.backend
        if kind == "model":
            return self.template.model
        if kind == "size":
            return torch.Size(saved["value"])
        if kind == "device":
            return torch.device(saved["value"])
        if kind == "tuple":
            return tuple(self.decode(None, item, where) for item in saved["items"])
        if kind == "set":
            return {self.decode(None, item, where) for item in saved["items"]}
        if kind in ("dict", "defaultdict"):
            old = current if isinstance(current, Mapping) else {}
            items = {key: self.decode(old.get(key), item, f"{where}[{key!r}]")
                     for key, item in saved["items"]}  # fmt: skip
            if kind == "dict":
                return items
            return defaultdict(FACTORIES[saved["factory"]], items)
        if kind == "param-data":
            from avalanche.training.utils import ParamData

            device = torch.device(saved["device"])
            data = decode_state(None, saved["data"], where, self.backend).to(device)
            return ParamData(saved["name"], shape=tuple(saved["shape"]), init_tensor=data,
                             device=device)  # fmt: skip
        if kind == "module":
            return self._decode_module(current, saved, where)
        if kind == "dataset":
            return self._decode_dataset(saved, where)
        if kind == "object":
            cls = _class(saved["type"], where)
            target = current if type(current) is cls else cls.__new__(cls)
            self.set_attributes(target, saved["attributes"], where)
            return target
        raise StateError(f"{where}: unknown kind {kind!r} in the saved state")

    def _decode_module(self, current: Any, saved: Mapping[str, Any], where: str) -> nn.Module:
        """Into the fresh template's module of the same place, or, for a module a plugin
        copied while training (LwF's previous model), into a copy of the restored model."""
        module = current if isinstance(current, nn.Module) else copy.deepcopy(self.template.model)
        _grow(module, saved["shapes"], where)
        module = decode_state(module, saved["state"], where, self.backend)
        for name, attributes in saved["attributes"].items():
            self.set_attributes(module.get_submodule(name), attributes, where)
        return module

    def _decode_dataset(self, saved: Mapping[str, Any], where: str) -> Any:
        from avalanche.benchmarks.utils import DataAttribute
        from avalanche.benchmarks.utils.flat_data import ConstantSequence

        cls = _class(saved["type"], where)
        labels = saved["labels"]
        images = (torch.empty(0) if saved["images"] is None
                  else decode_state(None, saved["images"], where, self.backend).cpu())  # fmt: skip
        attributes = []
        for name, in_items, values in saved["attributes"]:
            if isinstance(values, Mapping) and values[KEY] == "constant":
                values = ConstantSequence(values["value"], values["length"])
            elif isinstance(values, Mapping):  # one tensor a sample (DER's logits)
                values = list(decode_state(None, values["value"], where, self.backend).cpu())
            attributes.append(DataAttribute(values, name, use_in_getitem=in_items))
        return cls([LabelledImages(images, torch.tensor(labels, dtype=torch.int64))],
                   data_attributes=attributes)  # fmt: skip


def _grow(module: nn.Module, shapes: Mapping[str, list[Any]], where: str) -> None:
    """Give ``module`` the saved shapes where training grew it: a linear layer that an
    IncrementalClassifier replaced by a wider one, a buffer such as its active-unit mask
    or NCM's class means (None until the first experience)."""
    own = module.state_dict()
    device = next((t.device for t in own.values()), torch.device("cpu"))
    for key, (shape, dtype) in shapes.items():
        if key in own and list(own[key].shape) == shape:
            continue
        owner_name, _, leaf = key.rpartition(".")
        owner = module.get_submodule(owner_name)
        if isinstance(owner, nn.Linear) and leaf == "weight" and owner_name:
            parent_name, _, child = owner_name.rpartition(".")
            wider = nn.Linear(shape[1], shape[0], bias=f"{owner_name}.bias" in shapes)
            setattr(module.get_submodule(parent_name), child, wider.to(device))
        elif isinstance(owner, nn.Linear) and leaf == "bias":
            continue  # rebuilt with its weight
        elif leaf in owner._buffers:
            owner.register_buffer(leaf, torch.zeros(shape, dtype=getattr(torch, dtype),
                                                    device=device))  # fmt: skip
        else:
            raise StateError(f"{where}: {key} was saved with shape {shape}, which a fresh "
                             "template does not have and clbench cannot rebuild")  # fmt: skip


def _optimiser_state(template: Any, names: Mapping[int, str]) -> dict[str, Any] | None:
    """The optimiser's state dict, and its parameters by name (so that it can be pointed
    at the restored model's, whose grown layers are new objects)."""
    optimiser = template.optimizer
    if optimiser is None:
        return None
    groups = [[names.get(id(p)) for p in group["params"]] for group in optimiser.param_groups]
    if any(name is None for group in groups for name in group):
        raise StateError("the template's optimiser holds parameters that are not its model's")
    return {"groups": groups, "state": encode_state(optimiser.state_dict(), "optimizer")}


def _optimised_names(template: Any, names: Mapping[int, str]) -> list[str] | None:
    """Avalanche's map of the parameters its optimiser was last given, by name."""
    optimised = getattr(template, "optimized_param_id", None)
    if optimised is None:
        return None
    if any(names.get(id(p)) != name for name, p in optimised.items()):
        raise StateError("the template's optimised parameters are not its model's")
    return list(optimised)


def _rebuild_loaders(template: Any) -> None:
    """A-GEM samples its reference gradients from an endless loader over its buffers,
    made after each experience (as its ``update_memory`` makes it); unused until then."""
    from avalanche.benchmarks.utils.data_loader import GroupBalancedInfiniteDataLoader
    from avalanche.training.plugins import AGEMPlugin

    for plugin in template.plugins:
        if isinstance(plugin, AGEMPlugin) and plugin.buffers:
            plugin.buffer_dataloader = GroupBalancedInfiniteDataLoader(
                plugin.buffers, batch_size=plugin.sample_size // len(plugin.buffers),
                num_workers=0, pin_memory=False, persistent_workers=False,
            )  # fmt: skip
            plugin.buffer_dliter = iter(plugin.buffer_dataloader)


def _skipped(plugin: Any) -> bool:
    """Plugins that learn nothing: Avalanche's evaluation, the bridge's loss reporter."""
    from avalanche.training.plugins import EvaluationPlugin

    return isinstance(plugin, EvaluationPlugin) or type(plugin).__name__ == "LossReporter"


def _label(plugin: Any) -> str:
    return f"plugin {type(plugin).__name__}"


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _class(name: str, where: str) -> type:
    """A saved object's class, from Avalanche's modules or this plugin's only."""
    module, _, qualname = name.partition(":")
    if not module.startswith(ALLOWED_MODULES):
        raise StateError(f"{where}: the saved state names {name!r}, outside Avalanche")
    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part, None)
    if not isinstance(value, type):
        raise StateError(f"{where}: the saved state names {name!r}, which is not a class")
    return value

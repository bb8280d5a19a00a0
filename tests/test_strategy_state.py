"""The strategy state contract: for every built-in strategy, the state saved after two
experiences (written and read as a file, with ``weights_only`` loading) and loaded into
a fresh instance gives the same predictions and embeddings, bit for bit, and training
on a third experience from there gives what the uninterrupted strategy gives."""

from __future__ import annotations

import dataclasses
import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_evaluation_pass import QUICK

from cl_bench.training.registry import Registry
from cl_bench.training.state import StateError, decode_state, encode_state
from cl_bench.training.strategy import Runtime
from cl_bench.utils.config import build_config
from cl_bench.utils.errors import ConfigError


def available() -> list[str]:
    """Every built-in strategy that can run here, but Avalanche's, which train on
    Avalanche's experiences (tests/test_avalanche_state.py)."""
    names = []
    for name, entry in sorted(Registry.discover().strategies.items()):
        if name.startswith("avalanche:"):
            continue
        try:
            entry.spec.strategy.Config  # noqa: B018  (an unavailable one raises here)
        except ConfigError:
            continue
        names.append(name)
    return names


def quick(name: str, config_type: type) -> dict[str, str]:
    """QUICK's short schedules, and one epoch for everything else that has epochs."""
    if name in QUICK:
        return QUICK[name]
    fields = {f.name for f in dataclasses.fields(config_type)}
    return {key: value for key, value in (("epochs", "1"), ("warmup_epochs", "0"))
            if key in fields}  # fmt: skip


def through_a_file(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def build(name: str, backend, domains, runtime: Runtime):
    spec = Registry.discover().strategy(name)
    config = build_config(spec.strategy.Config, quick(name, spec.strategy.Config))
    return spec.strategy(backbone=backend, stream=domains.info, config=config, runtime=runtime)


@pytest.mark.slow
@pytest.mark.parametrize("name", available())
def test_a_saved_state_loads_into_a_fresh_strategy_and_trains_on_alike(
    name, cached_backend, domains
):
    cached_backend.register(torch.cat([e.images for e in domains.experiences]))
    torch.manual_seed(0)
    original = build(name, cached_backend, domains, Runtime(torch.device("cpu"), seed=0))
    for experience in domains.experiences[:2]:
        original.train(experience)
    state = through_a_file(original.state_dict())
    generators = [g.get_state() for g in (original.runtime.generator,
                                          original.runtime.augmentation_generator)]  # fmt: skip
    torch_state = torch.get_rng_state()

    restored = build(name, cached_backend, domains, Runtime(torch.device("cpu"), seed=0))
    restored.load_state_dict(state)
    images = torch.cat([domains.experiences[0].images[::6], domains.held_out["clipart"][::4]])
    with torch.no_grad():
        for a, b in zip(original.predict_and_embed(images), restored.predict_and_embed(images),
                        strict=True):  # fmt: skip
            assert torch.equal(a, b)

    # both go on to a third experience from the same random state
    for strategy in (original, restored):
        for generator, saved in zip((strategy.runtime.generator,
                                     strategy.runtime.augmentation_generator), generators,
                                    strict=True):  # fmt: skip
            generator.set_state(saved)
        torch.set_rng_state(torch_state)
        strategy.train(domains.experiences[2])
    with torch.no_grad():
        for a, b in zip(original.predict_and_embed(images), restored.predict_and_embed(images),
                        strict=True):  # fmt: skip
            assert torch.equal(a, b)


def test_plain_values_round_trip_and_modules_load_in_place():
    cpu = SimpleNamespace(device=torch.device("cpu"))
    head = torch.nn.Linear(3, 2)
    value = {"counts": [1, 2.5, "x", None, (3, True)], "array": np.arange(4),
             "head": head, "tensor": torch.ones(2)}  # fmt: skip
    saved = through_a_file(encode_state(value, "s.value_"))
    fresh = torch.nn.Linear(3, 2)
    loaded = decode_state({"head": fresh}, saved, "s.value_", cpu)
    assert loaded["counts"] == [1, 2.5, "x", None, (3, True)]
    assert loaded["array"].tolist() == [0, 1, 2, 3]
    assert loaded["head"] is fresh and torch.equal(fresh.weight, head.weight)
    assert torch.equal(loaded["tensor"], torch.ones(2))


def test_what_cannot_be_saved_or_loaded_is_named():
    cpu = SimpleNamespace(device=torch.device("cpu"))
    with pytest.raises(StateError, match=r"s\.thing_\[0\] holds a value of type object"):
        encode_state([object()], "s.thing_")
    # a module built while training, of a type nobody registered to rebuild
    saved = encode_state({"head": torch.nn.Bilinear(3, 3, 2)}, "s.heads_")
    with pytest.raises(StateError, match=r"s\.heads_\['head'\].*rebuild it in load_state_dict"):
        decode_state({}, saved, "s.heads_", cpu)
    # a registered one is rebuilt, with its modes
    linear = torch.nn.Linear(3, 2).eval().requires_grad_(False)
    rebuilt = decode_state(None, encode_state(linear, "s.head_"), "s.head_", cpu)
    assert torch.equal(rebuilt.weight, linear.weight)
    assert not rebuilt.training and not rebuilt.weight.requires_grad

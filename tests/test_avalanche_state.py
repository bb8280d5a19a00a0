"""The Avalanche bridge's state: every avalanche:<name> strategy, saved after two
experiences (through a file loaded with ``weights_only``) and loaded into a fresh one,
predicts and embeds bit for bit alike, and two more experiences from the same random
state train both alike: the model with its grown head, the optimiser's momentum, the
clock and each plugin's memory (replay buffers, importances, old models, GEM and A-GEM
memories, iCaRL's exemplars, StreamingLDA's statistics) all come back."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from avalanche.core import SupervisedPlugin

from cl_bench.data.streams import build_stream
from cl_bench.training.registry import Registry
from cl_bench.training.state import StateError
from cl_bench.training.strategy import Runtime
from cl_bench.utils.config import build_config

NAMES = ("naive", "cumulative", "ewc", "lwf", "si", "mas", "gem", "agem", "replay", "gdumb",
         "der", "er_ace", "icarl", "streaminglda")  # fmt: skip


@pytest.fixture(scope="module")
def small_stream(offline_spec):
    """10 experiences of 5 classes, 4 training images a class (20 an experience)."""
    return build_stream(offline_spec, seed=1993, limit_per_class=4)


def build(name: str, stream, backend, **overrides: str):
    spec = Registry.discover().strategy(f"avalanche:{name}")
    config = build_config(spec.strategy.Config, {"epochs": "1", **overrides})
    return spec.strategy(backbone=backend, stream=stream.info, config=config,
                         runtime=Runtime(device=backend.device, seed=0))  # fmt: skip


def through_a_file(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def random_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def restore(states: tuple) -> None:
    torch.set_rng_state(states[0])
    np.random.set_state(states[1])
    random.setstate(states[2])


def assert_alike(a, b, images: torch.Tensor) -> None:
    """The same outputs (logits, not only their argmax), embeddings and saved state."""
    for mine, theirs in zip(a.predict_and_embed(images), b.predict_and_embed(images), strict=True):
        assert torch.equal(mine, theirs)
    assert torch.equal(a.outputs(images), b.outputs(images))
    assert flat(a.state_dict()) == flat(b.state_dict())


def flat(value, path: str = "") -> dict[str, object]:
    """A saved state as {path: value}, tensors as their bytes, for an exact comparison."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat(item, f"{path}/{key}").items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in flat(item, f"{path}/{i}").items()}
    if isinstance(value, torch.Tensor):
        return {path: (value.dtype, tuple(value.shape), value.numpy().tobytes())}
    return {path: value}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "overrides"),
    [*((n, {}) for n in NAMES), ("lwf", {"adapters": "true"}), ("gdumb", {"adapters": "true"})],
)
def test_a_saved_template_loads_into_a_fresh_one_and_trains_on_alike(
    name, overrides, small_stream, cached_backend
):
    cached_backend.register(small_stream.data.images)
    train = [experience for experience, _ in small_stream.experiences()]
    images = torch.cat([test.images[:6] for _, test in list(small_stream.experiences())[:4]])
    torch.manual_seed(0)
    original = build(name, small_stream, cached_backend, **overrides)
    for experience in train[:2]:
        original.train(experience)
    restored = build(name, small_stream, cached_backend, **overrides)
    restored.load_state_dict(through_a_file(original.state_dict()))
    assert_alike(original, restored, images)
    assert restored.rehearsal_samples() == original.rehearsal_samples()

    for experience in train[2:4]:
        states = random_states()
        original.train(experience)
        restore(states)
        restored.train(experience)
    assert_alike(original, restored, images)
    assert restored.rehearsal_samples() == original.rehearsal_samples()


def test_the_replay_buffer_comes_back_as_the_same_samples(small_stream, cached_backend):
    cached_backend.register(small_stream.data.images)
    original = build("replay", small_stream, cached_backend)
    for experience, _ in list(small_stream.experiences())[:2]:
        original.train(experience)
    restored = build("replay", small_stream, cached_backend)
    restored.load_state_dict(through_a_file(original.state_dict()))

    def buffer(strategy):
        [replay] = [p for p in strategy.template_.plugins if type(p).__name__ == "ReplayPlugin"]
        return replay.storage_policy.buffer

    theirs, mine = buffer(original), buffer(restored)
    assert len(mine) == len(theirs) == 40
    for i in range(len(theirs)):
        x, y, t = theirs[i]
        x2, y2, t2 = mine[i]
        assert torch.equal(x, x2) and (y, t) == (y2, t2)


class Diary(SupervisedPlugin):
    """A user's plugin that keeps something clbench cannot save as plain data."""

    def __init__(self) -> None:
        super().__init__()
        self.notes = object()


def test_a_plugin_memory_that_cannot_be_saved_is_named(small_stream, cached_backend):
    strategy = build("naive", small_stream, cached_backend)
    strategy.template_.plugins.append(Diary())
    with pytest.raises(StateError, match=r"plugin Diary\.notes holds a object"):
        strategy.state_dict()


def test_a_saved_state_that_names_code_outside_avalanche_is_refused(small_stream, cached_backend):
    cached_backend.register(small_stream.data.images)
    original = build("lwf", small_stream, cached_backend)
    original.train(next(small_stream.experiences())[0])
    state = through_a_file(original.state_dict())
    [lwf] = [entry for entry in state["template"]["plugins"] if "LwF" in entry["type"]]
    lwf["attributes"]["lwf"]["type"] = "os:system"
    with pytest.raises(StateError, match=r"names 'os:system', outside Avalanche"):
        build("lwf", small_stream, cached_backend).load_state_dict(state)


def test_a_state_saved_with_other_plugins_is_refused(small_stream, cached_backend):
    state = through_a_file(build("ewc", small_stream, cached_backend).state_dict())
    with pytest.raises(StateError, match="saved by another version"):
        build("lwf", small_stream, cached_backend).load_state_dict(state)

"""Each Avalanche strategy that no other test trains, trained on the first experiences of a
small stream and checked for the mechanism that makes it the method it is: EWC's and
MAS's importances penalise moving the weights, LwF distils from the second experience
on, DER stores its logits, GDumb trains on its buffer alone, Cumulative on every image
seen so far, and ER-ACE keeps the incoming batch's loss off the old classes. A strategy
that silently trained as Naive (as Avalanche 0.6's SI did, see fixes.py) fails here."""

from __future__ import annotations

import copy
import hashlib
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from avalanche.core import SupervisedPlugin

from cl_bench.data.streams import build_stream
from cl_bench.training.registry import Registry
from cl_bench.training.strategy import Runtime
from cl_bench.utils.config import build_config


@pytest.fixture(scope="module")
def small_stream(offline_spec):
    """10 experiences of 5 classes, 4 training images a class (20 an experience)."""
    return build_stream(offline_spec, seed=1993, limit_per_class=4)


def fingerprint(image: torch.Tensor) -> str:
    return hashlib.sha1(image.cpu().contiguous().numpy().tobytes()).hexdigest()


class Recorder(SupervisedPlugin):
    """Which images each experience's training iterations saw (its own minibatches)."""

    def __init__(self) -> None:
        super().__init__()
        self.trained_on: list[set[str]] = []

    def before_training_exp(self, strategy, **kwargs) -> None:
        self.trained_on.append(set())

    def before_training_iteration(self, strategy, **kwargs) -> None:
        self.trained_on[-1].update(map(fingerprint, strategy.mb_x))


class Trained:
    """``avalanche:<name>`` built as a run builds it, trained one experience at a time."""

    def __init__(self, name: str, stream, backend, **overrides: str):
        spec = Registry.discover().strategy(f"avalanche:{name}")
        config = build_config(spec.strategy.Config, {"epochs": "1", **overrides})
        backend.register(stream.data.images)
        self.strategy = spec.strategy(backbone=backend, stream=stream.info, config=config,
                                      runtime=Runtime(device=backend.device, seed=0))  # fmt: skip
        self.template = self.strategy.template_
        self.recorder = Recorder()
        self.template.plugins.append(self.recorder)
        self.experiences = iter(train for train, _ in stream.experiences())
        self.seen: list = []

    def next(self):
        experience = next(self.experiences)
        self.strategy.train(experience)
        self.seen.append(experience)
        return experience

    def plugin(self, kind: str):
        [found] = [p for p in self.template.plugins if type(p).__name__ == kind]
        return found


def loss_added_by(plugin, template) -> list[tuple[int, float]]:
    """Spy on a plugin's ``before_backward`` in ``template``'s training steps (not in
    calls a test makes itself): (experience, what it added to the loss)."""
    added: list[tuple[int, float]] = []
    original = plugin.before_backward

    def spy(strategy, **kwargs):
        before = float(strategy.loss.detach())
        original(strategy, **kwargs)
        if strategy is template:
            added.append((strategy.clock.train_exp_counter,
                          float(strategy.loss.detach()) - before))  # fmt: skip

    plugin.before_backward = spy
    return added


def penalty(plugin, model, experience: int) -> float:
    """The regularisation term the plugin adds to a zero loss for ``model``'s weights."""
    state = SimpleNamespace(clock=SimpleNamespace(train_exp_counter=experience), model=model,
                            loss=torch.zeros(()), device=torch.device("cpu"))  # fmt: skip
    plugin.before_backward(state)
    return float(state.loss.detach())


def moved(model, seed: int) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A copy of ``model`` with every weight moved by a small random step."""
    copied = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    steps = {}
    with torch.no_grad():
        for name, parameter in copied.named_parameters():
            steps[name] = 0.01 * torch.randn(parameter.shape, generator=generator)
            parameter += steps[name]
    return copied, steps


@pytest.mark.parametrize("name", ["ewc", "mas"])
def test_importances_are_non_zero_and_penalise_moving_the_weights(name, small_stream,
                                                                 cached_backend):  # fmt: skip
    run = Trained(name, small_stream, cached_backend, epochs="3")  # one step an epoch
    plugin = run.plugin({"ewc": "EWCPlugin", "mas": "ZeroLossMASPlugin"}[name])
    added = loss_added_by(plugin, run.template)
    run.next()
    if name == "ewc":  # per experience: {parameter: ParamData}
        importance = {k: v.data for k, v in plugin.importances[0].items()}
        strength = plugin.ewc_lambda
    else:
        importance = {k: v.data for k, v in plugin.importance.items()}
        strength = plugin._lambda
    assert all(bool((v >= 0).all()) for v in importance.values())
    assert sum(float(v.sum()) for v in importance.values()) > 0
    model = run.template.model
    assert penalty(plugin, model, experience=1) == 0  # at the weights it saved
    copied, steps = moved(model, seed=0)
    by_hand = strength * sum(float((importance[k] * steps[k] ** 2).sum()) for k in importance)
    assert by_hand > 0
    assert penalty(plugin, copied, experience=1) == pytest.approx(by_hand, rel=1e-4)
    run.next()  # the penalty enters the second experience's training, not the first's
    first = [value for experience, value in added if experience == 0]
    second = [value for experience, value in added if experience == 1]
    assert len(first) == len(second) == 3 and all(value == 0 for value in first)
    # 0 at the first step (the saved weights), then the cost of having moved from them
    assert second[0] == 0 and all(value > 0 for value in second[1:])


def test_lwf_distils_from_the_second_experience_on(small_stream, cached_backend):
    run = Trained("lwf", small_stream, cached_backend, epochs="3")  # one step an epoch
    added = loss_added_by(run.plugin("LwFPlugin"), run.template)
    run.next()
    run.next()
    first = [value for experience, value in added if experience == 0]
    second = [value for experience, value in added if experience == 1]
    assert len(first) == len(second) == 3
    assert all(value == 0 for value in first)  # no earlier model to distil from
    # The first step of the second experience starts from the old model's weights, so
    # old and new outputs agree (KL 0); once the weights move, the term pulls them back.
    assert second[0] == pytest.approx(0, abs=1e-7) and all(v > 0 for v in second[1:])


def test_der_stores_the_logits_of_the_model_that_saw_each_sample(small_stream, cached_backend):
    run = Trained("der", small_stream, cached_backend, batch_size_mem="8")
    replayed: list[torch.Tensor] = []

    class Logits(SupervisedPlugin):
        def after_forward(self, strategy, **kwargs):
            if strategy.replay_loader is not None:
                replayed.append(strategy.batch_logits.clone())

    run.template.plugins.append(Logits())
    run.next()
    model = run.template.model.eval()
    buffer = run.template.storage_policy.buffer
    images = torch.stack([buffer[i][0] for i in range(len(buffer))])
    stored = torch.stack([buffer[i][3] for i in range(len(buffer))])
    assert len(buffer) == 20 and stored.shape == (20, 50)  # every output of the head
    with torch.no_grad():
        torch.testing.assert_close(stored, model(images), atol=1e-5, rtol=1e-5)
    run.next()
    buffer = run.template.storage_policy.buffer
    kept = {fingerprint(buffer[i][0]): buffer[i][3] for i in range(len(buffer))}
    for image, logits in zip(images, stored, strict=True):  # old samples keep old logits
        assert torch.equal(kept[fingerprint(image)], logits)
    with torch.no_grad():
        assert not torch.allclose(run.template.model.eval()(images), stored, atol=1e-3)
    # the replayed batches' targets are rows of what was stored
    assert replayed
    for row in torch.cat(replayed):
        assert bool((stored == row).all(1).any())


def test_gdumb_trains_only_on_its_class_balanced_buffer(small_stream, cached_backend):
    run = Trained("gdumb", small_stream, cached_backend, mem_size="10")
    for _ in range(3):
        run.next()
        buffer = run.plugin("GDumbPlugin").storage_policy.buffer
        stored = {fingerprint(buffer[i][0]) for i in range(len(buffer))}
        labels = [int(buffer[i][1]) for i in range(len(buffer))]
        assert len(stored) == 10 and run.recorder.trained_on[-1] == stored
        seen = len(run.seen) * 5
        classes = min(seen, 10)  # ten places, shared evenly by the classes seen so far
        assert len(set(labels)) == classes and set(labels) <= set(range(seen))
        assert set(Counter(labels).values()) == {10 // classes}


def test_cumulative_trains_on_every_image_seen_so_far(small_stream, cached_backend):
    run = Trained("cumulative", small_stream, cached_backend)
    union: set[str] = set()
    for _ in range(3):
        experience = run.next()
        union |= set(map(fingerprint, experience.images))
        assert run.recorder.trained_on[-1] == union
    assert len(union) == 60


def test_er_ace_keeps_the_incoming_loss_off_old_classes(small_stream, cached_backend):
    run = Trained("er_ace", small_stream, cached_backend)
    calls = []
    criterion = run.template.ace_criterion

    def spy(incoming, labels, replayed, replay_labels):
        calls.append([t.detach().clone() for t in (incoming, labels, replayed, replay_labels)])
        return criterion(incoming, labels, replayed, replay_labels)

    run.template.ace_criterion = spy
    run.next()
    assert calls == []  # nothing to replay on the first experience
    run.next()
    assert calls
    old = torch.arange(5)
    for incoming, labels, replayed, replay_labels in calls:
        assert not bool(torch.isin(labels, old).any())
        incoming.requires_grad_()
        replayed.requires_grad_()
        incoming_grad, replayed_grad = torch.autograd.grad(
            criterion(incoming, labels, replayed, replay_labels), (incoming, replayed)
        )
        assert torch.count_nonzero(incoming_grad[:, old]) == 0  # old logits masked
        if torch.isin(replay_labels, old).any():  # replayed samples still train them
            assert torch.count_nonzero(replayed_grad[:, old]) > 0
    assert any(bool(torch.isin(r, old).any()) for *_, r in calls)


# Where each runnable catalogue entry is trained, and what the test checks of it.
TRAINED = {
    "ewc": "here: importances and their penalty",
    "mas": "here: importances and their penalty",
    "lwf": "here: distillation from the second experience on",
    "der": "here: stored logits",
    "gdumb": "here: trains on its buffer alone",
    "cumulative": "here: trains on the union of the experiences",
    "er_ace": "here: old-class logits masked",
    "naive": "test_avalanche_bridge: its matrix equals Avalanche's EvaluationPlugin",
    "si": "test_avalanche_bridge: non-zero importances where Avalanche's are zero",
    "icarl": "test_avalanche_bridge: above chance, 200 exemplars",
    "gem": "test_avalanche_bridge: above chance, 200 stored samples",
    "agem": "test_avalanche_bridge: above chance, 200 stored samples",
    "replay": "test_avalanche_bridge: above chance, 200 stored samples",
    "streaminglda": "test_avalanche_bridge: above chance, no memory",
}


def test_every_runnable_catalogue_entry_is_trained_by_a_test():
    """A strategy added to the catalogue needs a test that trains it (and a line here)."""
    from clbench_avalanche.catalogue import CATALOGUE

    assert {entry.name for entry in CATALOGUE if not entry.unavailable} == set(TRAINED)

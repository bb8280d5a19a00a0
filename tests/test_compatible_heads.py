"""The compatible heads: OCA's orthogonal layer stays orthogonal, the lambda regulariser
behaves as defined, backward transforms learn a known rotation and chain into the
right space; updates train on their experience plus a rehearsal memory."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from chance import above_chance
from clbench_compatible.base import HeadConfig
from clbench_compatible.independent import IndependentHead
from clbench_compatible.lambda_orth import LambdaOrth, LambdaOrthConfig, backward_transform
from clbench_compatible.losses import lambda_regulariser, orthogonality_gap, supcon
from clbench_compatible.memory import FeatureMemory
from clbench_compatible.oca import Oca, OcaConfig
from torch import nn

from cl_bench.models.backend import Backend
from cl_bench.training.strategy import Runtime


def make(cls, config, lite0, domains):
    return cls(backbone=Backend(lite0), stream=domains.info, config=config,
               runtime=Runtime(device=torch.device("cpu"), seed=0))  # fmt: skip


def random_rotation(width: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(width, width, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.diagonal(r))


def test_oca_widens_and_its_orthogonal_layers_stay_orthogonal(lite0, domains):
    oca = make(Oca, OcaConfig(epochs=8, warmup_epochs=1), lite0, domains)
    for experience in domains.experiences:
        oca.train(experience)
    assert oca.report()["representation_widths"] == [128, 160, 192]
    for layer in oca.orthogonal_layers_:
        weight = layer.weight.detach().double()
        eye = torch.eye(len(weight), dtype=weight.dtype)
        torch.testing.assert_close(weight @ weight.T, eye, atol=1e-5, rtol=0)
    images = domains.held_out["clipart"]
    assert oca.embed(images).shape == (len(images), 192)
    predicted = oca.predict(images)
    labels = torch.arange(10, 15).repeat_interleave(16)  # held-out clip art, 16 a class
    assert above_chance(int((predicted == labels).sum()), len(labels), classes=15)


def test_lambda_regulariser_is_zero_when_orthogonal_and_grows_with_the_gap():
    rotation = random_rotation(16, seed=1)
    assert orthogonality_gap(rotation) < 1e-5
    assert lambda_regulariser(rotation, lam=12.0, alpha=1.0) < 1e-5
    assert lambda_regulariser(rotation, lam=0.0, alpha=1.0) < 1e-5
    noise = torch.randn(16, 16, generator=torch.Generator().manual_seed(2))
    values = [
        lambda_regulariser(rotation + scale * noise, lam=12.0, alpha=1.0).item()
        for scale in (0.01, 0.1, 0.3, 1.0, 3.0)
    ]
    assert all(a < b for a, b in itertools.pairwise(values))
    small, large = (orthogonality_gap(rotation + s * noise).item() for s in (0.1, 3.0))
    assert values[-1] == pytest.approx(large / (1 + math.exp(12 - large)), rel=1e-4)
    assert small < 12 and values[1] < 0.01 * small  # below lambda the sigmoid damps it


class Fixed(nn.Module):
    """A 'model' whose representation is x @ rotation, normalised."""

    def __init__(self, rotation: torch.Tensor):
        super().__init__()
        self.rotation = rotation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x @ self.rotation, dim=1)


def test_backward_transform_learns_a_known_rotation(lite0, domains):
    strategy = make(LambdaOrth, LambdaOrthConfig(width=16, lam=0.0, transform_epochs=60),
                    lite0, domains)  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (400,), generator=generator)
    features = torch.randn(5, 16, generator=generator)[labels] + 0.5 * torch.randn(
        400, 16, generator=generator
    )
    old, new = Fixed(torch.eye(16)), Fixed(random_rotation(16, seed=3))
    backward = strategy._transforms(old, new, features, labels)
    held_out = torch.randn(100, 16, generator=generator)
    mapped = backward(new(held_out))
    cosine = F.cosine_similarity(mapped, old(held_out), dim=1)
    assert cosine.mean() > 0.98
    assert orthogonality_gap(backward.weight) < 0.5


def test_affine_backward_transform_improves_on_its_orthogonal_start(lite0, domains):
    """When the new space is a stretched rotation of the old one, the affine B (within
    the lambda budget) fits the old features better than the Procrustes rotation it
    starts from."""
    strategy = make(LambdaOrth, LambdaOrthConfig(width=16, transform_epochs=60), lite0, domains)
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (400,), generator=generator)
    features = torch.randn(5, 16, generator=generator)[labels] + 0.5 * torch.randn(
        400, 16, generator=generator
    )
    stretch = torch.diag(torch.linspace(0.3, 3.0, 16))
    old, new = Fixed(torch.eye(16)), Fixed(random_rotation(16, seed=3) @ stretch)
    start = backward_transform(new(features), old(features), orthogonal=False)
    trained = strategy._transforms(old, new, features, labels)
    with torch.no_grad():
        before = (start(new(features)) - old(features)).pow(2).sum(1).mean()
        after = (trained(new(features)) - old(features)).pow(2).sum(1).mean()
    assert orthogonality_gap(start.weight) < 1e-4
    assert after < 0.8 * before  # measured: 0.083 -> 0.054
    assert 0 < orthogonality_gap(trained.weight) < 12  # left orthogonality, within lambda


def test_chain_of_backward_transforms_maps_into_the_right_space(lite0, domains):
    strategy = make(LambdaOrth, LambdaOrthConfig(width=8), lite0, domains)
    r1, r2 = random_rotation(8, seed=4), random_rotation(8, seed=5)
    for rotation in (r1, r2):  # B_t undoes the rotation that model t applied
        layer = nn.Linear(8, 8, bias=False)
        layer.weight.data.copy_(rotation)  # x -> x @ rotation.T
        strategy.backward_.append(layer)
    space0 = torch.randn(6, 8)
    space2 = space0 @ r1 @ r2
    torch.testing.assert_close(strategy.to_model_space(space2, 2), space2)
    torch.testing.assert_close(strategy.to_model_space(space2, 1), space0 @ r1, atol=1e-5, rtol=0)
    torch.testing.assert_close(strategy.to_model_space(space2, 0), space0, atol=1e-5, rtol=0)


def test_strictly_orthogonal_variant_and_supcon(lite0, domains):
    config = LambdaOrthConfig(epochs=3, warmup_epochs=0, transform_epochs=3, orthogonal=True)
    strategy = make(LambdaOrth, config, lite0, domains)
    for experience in domains.experiences[:2]:
        strategy.train(experience)
    assert strategy.report()["backward_orthogonality_gap"][0] < 1e-4
    labels = torch.tensor([0, 0, 1, 1])
    aligned = torch.eye(4)[[0, 0, 1, 1]]
    assert supcon(aligned, aligned, labels, 0.1) < supcon(aligned, aligned.flip(0), labels, 0.1)


def test_feature_memory_keeps_a_seeded_class_balanced_sample():
    features = torch.arange(30.0).unsqueeze(1).repeat(1, 4)
    labels = torch.tensor([0] * 12 + [1] * 15 + [2] * 3)
    memories = []
    for _ in range(2):
        memory = FeatureMemory(per_class=5)
        memory.add(features, labels, torch.Generator().manual_seed(7))
        memories.append(memory)
    memory = memories[0]
    assert memory.labels.bincount().tolist() == [5, 5, 3]  # all of the smaller class
    assert torch.equal(memory.features, memories[1].features)  # seeded
    kept_rows = memory.features[:, 0].long()
    assert torch.equal(labels[kept_rows], memory.labels)  # features kept with their labels
    assert len(kept_rows.unique()) == 13  # no image twice
    new, new_labels = torch.full((2, 4), -1.0), torch.tensor([3, 3])
    training, training_labels = memory.with_new(new, new_labels)
    assert training_labels.tolist()[:2] == [3, 3] and len(training) == 15
    empty = FeatureMemory(per_class=0)
    empty.add(features, labels, torch.Generator().manual_seed(7))
    assert len(empty) == 0 and empty.with_new(new, new_labels)[0] is new


class Recording(IndependentHead):
    """Records what each update trained on."""

    def _learn(self, head, features, labels, num_classes, experience):
        self.seen = [*getattr(self, "seen", []), (len(features), num_classes, labels.max())]
        super()._learn(head, features, labels, num_classes, experience)


def test_updates_train_on_their_experience_plus_the_memory_of_old_classes(lite0, domains):
    config = HeadConfig(epochs=1, warmup_epochs=0, memory_per_class=4)
    strategy = make(Recording, config, lite0, domains)
    for experience in domains.experiences:
        strategy.train(experience)
    assert [(size, classes) for size, classes, _ in strategy.seen] == [
        (120, 5),
        (120 + 20, 10),
        (120 + 40, 15),
    ]
    assert all(top == classes - 1 for _, classes, top in strategy.seen)
    assert strategy.rehearsal_samples() == 60
    without = make(Recording, HeadConfig(epochs=1, warmup_epochs=0, memory_per_class=0),
                   lite0, domains)  # fmt: skip
    for experience in domains.experiences:
        without.train(experience)
    assert [(size, classes) for size, classes, _ in without.seen] == [(120, 5)] * 3

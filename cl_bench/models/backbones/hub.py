"""timm hub ViTs by explicit pretrained tag, and a tiny random ViT for tests.

Tags are pinned (``vit_base_patch16_224.augreg_in21k``): untagged names changed
meaning across timm releases and made published numbers irreproducible. Without a
network, ``--weights PATH`` loads the same checkpoint from a local file through
timm's own loader, so key filtering (and ``.npz`` conversion) is exactly timm's.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from cl_bench.models.backbones.base import Backbone, BackboneOptions, read_checkpoint
from cl_bench.utils.errors import BackboneUnavailableError, WeightsMismatchError, shortened
from cl_bench.utils.files import sha256_file

HUB_VITS = {
    "vit_base_patch16_224.augreg_in21k": "ViT-B/16, ImageNet-21k (AugReg); MOS/APER/EASE backbone",
    "vit_base_patch16_224.augreg2_in21k_ft_in1k": (
        "ViT-B/16, IN-21k fine-tuned on IN-1k; SEMA backbone"
    ),
}


def load_hub_model(tag: str, options: BackboneOptions, hub_cache: Path | None = None) -> Backbone:
    """Hub weights, else the local hub cache when the hub is unreachable, else a clear error.

    Without a network the Hugging Face client retries for about 50 s before failing;
    probing the hub's host name first makes the offline answer immediate.
    """
    import timm  # deferred: importing timm costs seconds that `clbench list` need not pay
    from timm.data import resolve_data_config

    weights: dict[str, str] = {"tag": tag}
    path = options.weights
    if path is None and (reason := _hub_unreachable()) is not None:
        path = _cached_hub_file(tag, hub_cache)
        if path is None:
            raise BackboneUnavailableError(
                f"the pretrained weights of {shortened(tag)} are not cached and the hub is "
                f"unreachable ({reason}). Download the checkpoint where there is a network (e.g. "
                f"https://huggingface.co/timm/{tag}) and pass it with --weights PATH "
                "(.safetensors, .pth or .npz)."
            )
        weights["source"] = "hub cache"
    if path is not None:
        model = _from_local_file(tag, path)
        weights.update(file=path.name, sha256=sha256_file(path))
    else:
        try:
            model = timm.create_model(tag, pretrained=True, num_classes=0)
        except Exception as error:
            raise BackboneUnavailableError(
                f"could not download the pretrained weights of {shortened(tag)} "
                f"({type(error).__name__}: {error}). Download the checkpoint elsewhere (e.g. from "
                f"https://huggingface.co/timm/{tag}) and pass it with --weights PATH "
                "(.safetensors, .pth or .npz)."
            ) from error
        weights["source"] = "timm hub"
    config = resolve_data_config({}, model=model)
    return Backbone(
        name=tag,
        model=model,
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        input_size=int(config["input_size"][-1]),
        weights=weights,
        device=options.device,
        crop_pct=float(config["crop_pct"]),
    )


def _hub_unreachable() -> str | None:
    """Why the hub cannot be reached, or None when it may be (a proxy decides for itself)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as error:
        return f"cannot resolve {host}: {error}"
    return None


def _cached_hub_file(tag: str, hub_cache: Path | None) -> Path | None:
    """A checkpoint of ``tag`` already in the local Hugging Face cache, if any."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(f"timm/{tag}", filename, cache_dir=hub_cache)
        if isinstance(found, str):
            return Path(found)
    return None


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
            f"--weights {path} does not load into {shortened(tag)}: {type(error).__name__}: {error}"
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
        state = read_checkpoint(options.weights, "vit_tiny_random")
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise WeightsMismatchError(
                f"vit_tiny_random: {options.weights} does not fit this architecture: "
                f"{str(error).splitlines()[0]}"
            ) from error
    return Backbone(
        name="vit_tiny_random",
        model=model,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=image_size,
        weights={"source": "random init, seed 0"}
        if options.weights is None
        else {"file": options.weights.name, "sha256": sha256_file(options.weights)},
        device=options.device,
    )

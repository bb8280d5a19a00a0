"""One evaluation from names to a run record: resolve plugins, build, run, measure.

The CLI (and any other front end, such as a sweep executor) calls :func:`evaluate` and
writes the record it returns; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch

from cl_bench.backbones.base import BackboneOptions, BackboneSpec
from cl_bench.backbones.hub import load_hub_model
from cl_bench.backend import Backend, shared_backend
from cl_bench.config import build_config, canonical_overrides, config_to_dict
from cl_bench.errors import ConfigError, MissingDataError, UnknownNameError
from cl_bench.feature_store import FeatureStore
from cl_bench.metrics import summarise
from cl_bench.records import (
    RECORD_FORMAT,
    checkpoint_sha256,
    package_versions,
    utc_now,
    variant_of,
)
from cl_bench.registry import Registry
from cl_bench.runner import run
from cl_bench.stream_spec import StreamSpec
from cl_bench.streams import build_stream

TIMM_PREFIX = "timm:"


def resolve_stream(
    registry: Registry,
    stream: str,
    increment: int | None = None,
    initial_classes: int | None = None,
) -> StreamSpec:
    """A registered stream's name, a stream spec file (``.yaml``), or an image folder.

    ``increment`` and ``initial_classes`` split an image folder (default B0 Inc10); a
    named stream or spec file fixes its own.
    """
    path = Path(stream)
    if path.is_dir():
        return _folder_spec(path, increment, initial_classes)
    if increment is not None or initial_classes is not None:
        if stream not in registry.streams and path.suffix not in (".yaml", ".yml"):
            raise MissingDataError(
                f"no image folder {stream!r} (from {Path.cwd()}); increment and "
                "initial-classes split an image folder given by path"
            )
        raise ConfigError(
            "increment and initial-classes (--increment, --initial-classes, or a grid file's "
            "keys) split an image folder given by path; "
            f"{stream!r} fixes its own (the standard streams come in named variants, "
            "see `clbench list streams`)"
        )
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _spec_file(registry, path)
    if path.suffix in (".yaml", ".yml") or "/" in stream:
        raise MissingDataError(
            f"no stream spec file or image folder {stream!r} (from {Path.cwd()}); stream "
            "names are listed by `clbench list streams`"
        )
    return registry.stream(stream)


def _spec_file(registry: Registry, path: Path) -> StreamSpec:
    """A spec file by path; one that takes an installed stream's name with other content
    is refused, as its records would mix with that stream's."""
    spec = StreamSpec.from_yaml(path)
    installed = registry.streams.get(spec.name)
    # Only what the records depend on counts: a copy with its own description is fine.
    prose = {"description": "", "published": ()}
    if installed is not None and dataclasses.replace(
        installed.spec, **prose
    ) != dataclasses.replace(spec, **prose):
        raise ConfigError(
            f"stream spec {path} names its stream {spec.name!r}, the name of an installed "
            f"stream ({installed.distribution}) with other data or splits; its records "
            "would mix with that stream's: give the file another `name:`"
        )
    return spec


def _folder_spec(path: Path, increment: int | None, initial_classes: int | None) -> StreamSpec:
    return StreamSpec.for_folder(
        path, increment=10 if increment is None else increment,
        initial_classes=initial_classes or 0,
    )  # fmt: skip


def stream_name(
    stream: str, increment: int | None = None, initial_classes: int | None = None
) -> str:
    """The name a stream's records go under, without building it: a registered name, a
    spec file's ``name``, or ``<folder>-b<initial>inc<increment>`` for an image folder."""
    path = Path(stream)
    if path.is_dir():
        return _folder_spec(path, increment, initial_classes).name
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return StreamSpec.from_yaml(path).name
    return stream


def _loaded_sha256(backend: Backend, weights: Path | None) -> str | None:
    """The digest of the checkpoint the backbone loaded (as its plugin reports it)."""
    if weights is None:
        return None
    return (backend.weights or {}).get("sha256") or checkpoint_sha256(weights.absolute())


def resolve_backbone(registry: Registry, backbone: str) -> BackboneSpec:
    """A registered backbone, or ``timm:<architecture>`` for any timm model: its hub
    weights, or a local checkpoint given with --weights."""
    if backbone.startswith(TIMM_PREFIX):
        import timm

        architecture = backbone.removeprefix(TIMM_PREFIX)
        if not timm.is_model(architecture):
            close = difflib.get_close_matches(architecture.split(".")[0], timm.list_models(), 10)
            raise UnknownNameError("timm architecture", architecture, close)
        return BackboneSpec(backbone, f"timm architecture {architecture}",
                            partial(load_hub_model, architecture))  # fmt: skip
    return registry.backbone(backbone)


def evaluate(
    registry: Registry,
    *,
    strategy: str,
    stream: str,
    backbone: str,
    seed: int,
    overrides: Mapping[str, str],
    limit_per_class: int | None = None,
    split: str = "test",
    weights: Path | None = None,
    device: torch.device,
    use_cache: bool = True,
    track: Callable[..., Iterator[Any]] | None = None,
    increment: int | None = None,
    initial_classes: int | None = None,
) -> dict[str, Any]:
    """Run ``strategy`` on ``stream`` with ``backbone`` and return the complete run record.

    Names and config are validated before any data is loaded or model built.
    """
    strategy_spec = registry.strategy(strategy)
    stream_spec = resolve_stream(registry, stream, increment, initial_classes)
    backbone_spec = resolve_backbone(registry, backbone)
    overrides = canonical_overrides(strategy_spec.strategy.Config, overrides)
    config = build_config(strategy_spec.strategy.Config, overrides)
    started, clock = utc_now(), time.perf_counter()
    # The backbone first: a missing checkpoint should fail before images are prepared.
    backend = shared_backend(
        backbone_spec,
        BackboneOptions(device=device, weights=weights, image_size=stream_spec.resolution),
    )
    backend.store = FeatureStore(enabled=use_cache)
    backend.stats.reset()
    stream_spec = stream_spec.fitted_to(backend.backbone.input_size, backend.backbone.crop_pct)
    built = build_stream(
        stream_spec,
        seed=seed,
        limit_per_class=limit_per_class,
        use_cache=use_cache,
        track=track,
        split=split,
    )
    result = run(
        strategy_spec, stream=built, backbone=backend, config=config, seed=seed, track=track
    )
    return {
        "format": RECORD_FORMAT,
        "stream": stream_spec.name,
        "strategy": strategy,
        "backbone": backbone,
        "seed": seed,
        # the checkpoint as loaded, whatever has happened to its file since
        "variant": variant_of(overrides, limit_per_class, split, _loaded_sha256(backend, weights)),
        "split": split,
        "config": config_to_dict(config),
        "overrides": dict(overrides),
        "limit_per_class": limit_per_class,
        "stream_info": {
            "spec_file": stream_spec.path.name if stream_spec.path else None,
            "class_order": built.class_order,
            "class_names": list(built.info.class_names),
            "classes_per_experience": [list(c) for c in built.info.classes_per_experience],
            "resolution": built.info.resolution,
            "fit": [stream_spec.fit, stream_spec.crop_pct] if stream_spec.fit == "crop" else "pad",
            "train_images": sum(len(e.dataset) for e in built.benchmark.train_stream),
            "test_images": sum(result.test_counts),
            # Where this strategy's result should land, in the papers' own setting.
            "published": [
                dataclasses.asdict(p) for p in stream_spec.published if p.strategy == strategy
            ],
        },
        "backbone_weights": backend.weights,
        "strategy_provider": registry.provider("strategy", strategy).distribution,
        "strategy_report": result.strategy_report,
        "versions": package_versions(),
        "device": str(device),
        "started": started,
        "finished": utc_now(),
        "metrics": {
            **summarise(result.correct, result.test_counts),
            "correct": result.correct,
            "test_counts": result.test_counts,
            "compatibility": result.compatibility,
        },
        "resources": {
            "wall_seconds": time.perf_counter() - clock,
            "train_seconds": result.train_seconds,
            "eval_seconds": result.eval_seconds,
            "compatibility_seconds": result.compatibility_seconds,
            "peak_rss_mib": result.peak_rss_mib,
            "peak_accelerator_mib": result.peak_accelerator_mib,
            "trainable_parameters": result.trainable_parameters,
            "total_parameters": result.total_parameters,
            "rehearsal_samples": result.rehearsal_samples,
            "torch_threads": torch.get_num_threads(),
            # Frozen work actually done (cache hits excluded): what the feature cache saves.
            "frozen_images_forwarded": backend.stats.images_forwarded,
            "frozen_block_evaluations": backend.stats.block_evaluations,
            "images_from_cache": backend.stats.images_from_cache,
        },
    }

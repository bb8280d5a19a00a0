"""From the names a user types to specs: streams (registered names, spec files, image
folders) and backbones (registered names, ``timm:<architecture>``), and the name a
stream's records go under."""

from __future__ import annotations

import dataclasses
import difflib
from functools import partial
from pathlib import Path

from cl_bench.data.spec import StreamSpec
from cl_bench.models.backbones.base import BackboneSpec
from cl_bench.models.backbones.hub import load_hub_model
from cl_bench.training.registry import Registry
from cl_bench.utils.errors import ConfigError, MissingDataError, UnknownNameError, shortened
from cl_bench.utils.names import check_name

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
    path, is_dir, is_file = _as_path(stream)
    if is_dir:
        return _folder_spec(path, increment, initial_classes)
    if increment is not None or initial_classes is not None:
        if stream not in registry.streams and path.suffix not in (".yaml", ".yml"):
            raise MissingDataError(
                f"no image folder {shortened(stream)} (from {Path.cwd()}); increment and "
                "initial-classes split an image folder given by path"
            )
        raise ConfigError(
            "increment and initial-classes (--increment, --initial-classes, or a grid file's "
            "keys) split an image folder given by path; "
            f"{shortened(stream)} fixes its own (the standard streams come in named variants, "
            "see `clbench list streams`)"
        )
    if path.suffix in (".yaml", ".yml") and is_file:
        return _spec_file(registry, path)
    if path.suffix in (".yaml", ".yml") or "/" in stream:
        raise MissingDataError(
            f"no stream spec file or image folder {shortened(stream)} (from {Path.cwd()}); stream "
            "names are listed by `clbench list streams`"
        )
    return registry.stream(stream)


def _as_path(stream: str) -> tuple[Path, bool, bool]:
    """``stream`` as a path, and whether it is a folder or a file there."""
    path = Path(check_name(stream, "stream"))
    try:
        return path, path.is_dir(), path.is_file()
    except OSError:  # a name no file system takes as a path (too long, say)
        return path, False, False


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
            f"stream spec {path} names its stream {shortened(spec.name)}, the name of an installed "
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
    path, is_dir, is_file = _as_path(stream)
    if is_dir:
        return _folder_spec(path, increment, initial_classes).name
    if path.suffix in (".yaml", ".yml") and is_file:
        return StreamSpec.from_yaml(path).name
    return stream


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

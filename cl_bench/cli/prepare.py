"""``clbench prepare``: check a stream's data, decode and cache its images once."""

from __future__ import annotations

from pathlib import Path

import click

from cl_bench.cli.console import progress_tracker, stdout, table
from cl_bench.cli.options import DEFAULT_BACKBONE, discover_registry, folder_split_options
from cl_bench.data.prepared import prepare
from cl_bench.data.sources.base import DataContext
from cl_bench.experiments.names import resolve_backbone, resolve_stream
from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.utils.files import data_root


@click.command("prepare")
@click.option("--stream", required=True, help="Stream name, spec file or image folder.")
@click.option(
    "--download",
    is_flag=True,
    help="Download a missing data set where clbench knows how (CIFAR-100); needs network.",
)
@click.option(
    "--backbone",
    default=DEFAULT_BACKBONE,
    show_default=True,
    help="Photos are cropped as this backbone's pretrained config says; prepare for the "
    "backbone you will run.",
)
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Local checkpoint of the backbone.")  # fmt: skip
@folder_split_options
def prepare_command(
    stream: str,
    download: bool,
    backbone: str,
    weights: Path | None,
    increment: int | None,
    initial_classes: int | None,
) -> None:
    """Check a stream's data, decode and cache its images (once, before runs or sweeps).

    The cache holds the images, not the split into experiences: one preparation serves
    every increment of the same data.
    """
    registry = discover_registry()
    spec = resolve_stream(registry, stream, increment, initial_classes)
    if spec.fit == "crop":  # the crop depends on the backbone (as in `clbench evaluate`)
        model = resolve_backbone(registry, backbone).load(
            BackboneOptions(weights=weights, image_size=spec.resolution)
        )
        spec = spec.fitted_to(model.input_size, model.crop_pct)
    with progress_tracker() as track:
        data = prepare(spec, track=track, context=DataContext(data_root(), download=download))
    rows = [
        ("classes", f"{len(data.class_names):,}"),
        ("training images", f"{int((~data.is_test).sum()):,}"),
        ("test images", f"{int(data.is_test.sum()):,}"),
        (
            "resolution",
            f"{spec.resolution} px ({spec.fit}"
            + (f", crop {spec.crop_pct})" if spec.fit == "crop" else ")"),
        ),
    ]
    stdout.print(table(f"stream {spec.name}", ["item", "value"], rows))

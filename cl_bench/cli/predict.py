"""``clbench predict``: the classes a saved model (``clbench evaluate --save-model``)
predicts for image files."""

from __future__ import annotations

import csv
from pathlib import Path

import click

from cl_bench.cli.console import console, stdout, table
from cl_bench.cli.options import discover_registry
from cl_bench.cli.path_types import nonempty_file
from cl_bench.experiments.models import load_model
from cl_bench.experiments.predict import image_files, predict
from cl_bench.experiments.runs import resolve_device
from cl_bench.utils.files import write_atomically


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    callback=nonempty_file,
    help="A model file written by `clbench evaluate --save-model`.",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    callback=nonempty_file,
    default=None,
    help="The backbone's local checkpoint, if the run loaded one with --weights.",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, or auto.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the predictions as CSV (file, class).",
)
def predict_command(
    images: tuple[Path, ...], model_path: Path, weights: Path | None, device: str,
    output: Path | None,
) -> None:  # fmt: skip
    """Classify image files with a model saved by `clbench evaluate --save-model`.

    IMAGES are files, or folders of them; each is fitted to the run's resolution as its
    stream's images were, and its predicted class is printed.
    """
    model = load_model(model_path, discover_registry(), weights=weights,
                       device=resolve_device(device))  # fmt: skip
    record = model.record
    title = (f"{record['strategy']} trained on {record['stream']} with {record['backbone']}, "
             f"seed {record['seed']}")  # fmt: skip
    predicted = predict(model, image_files(images))
    rows = [(str(file), name) for file, name in predicted]
    stdout.print(table(title, ["image", "predicted class"], rows, numeric=False))
    if output is not None:

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as handle:
                csv.writer(handle).writerows([("image", "class"), *rows])

        write_atomically(output, write)
        console.print(f"predictions written to {output}", soft_wrap=True, highlight=False)

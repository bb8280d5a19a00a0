"""``clbench evaluate --save-model`` and ``clbench predict`` end to end on the packaged
offline default: the saved model classifies the stream's own test images, written out
as image files, exactly as the run scored them."""

from __future__ import annotations

import json

import pytest
from cli_runner import clbench
from PIL import Image

from cl_bench.data.prepared import prepare
from cl_bench.data.streams import class_order
from cl_bench.training.registry import Registry


@pytest.mark.slow
def test_a_saved_model_predicts_what_its_run_scored(tmp_path):
    model = tmp_path / "simplecil.clbench"
    runs = tmp_path / "runs"
    code, _, err = clbench("evaluate", "--strategy", "simplecil", "--limit-per-class", "3",
                           "--output", str(runs), "--save-model", str(model))  # fmt: skip
    assert code == 0, err
    [path] = (tmp_path / "runs").rglob("seed1993*.json")
    record = json.loads(path.read_text())

    # the test images of the first experience's classes, as PNG files
    data = prepare(Registry.discover().stream("offline-mix"))
    order = record["stream_info"]["class_order"]
    assert order == class_order(len(data.class_names), 1993)
    first = record["stream_info"]["classes_per_experience"][0]
    folder = tmp_path / "images"
    folder.mkdir()
    expected = {}
    for label in first:
        original = order[label]
        rows = ((data.labels == original) & data.is_test).nonzero().flatten().tolist()
        for row in rows:
            file = folder / f"{row:05d}.png"
            Image.fromarray(data.images[row].permute(1, 2, 0).numpy()).save(file)
            expected[file.name] = record["stream_info"]["class_names"][label]

    csv = tmp_path / "predicted.csv"
    code, _, err = clbench("predict", "--model", str(model), str(folder), "--output", str(csv))
    assert code == 0, err
    lines = csv.read_text().splitlines()[1:]
    predicted = {line.split(",")[0].rsplit("/", 1)[-1]: line.split(",", 1)[1] for line in lines}
    assert sorted(predicted) == sorted(expected)
    correct = sum(predicted[name] == expected[name] for name in expected)
    # the run scored these images after its last experience: the same count
    assert correct == record["metrics"]["correct"][-1][0]


def test_a_damaged_model_file_is_refused_with_its_name(tmp_path):
    model = tmp_path / "broken.clbench"
    model.write_bytes(b"clbench-model 1\n" + b"0" * 64 + b"\nnot a payload")
    code, _, err = clbench("predict", "--model", str(model), str(tmp_path))
    assert code != 0
    assert "broken.clbench" in err and "is damaged" in err

"""The literature's streams on files generated here in exactly their on-disk formats
(CIFAR-100's python pickles, image folders with train/ and test/), run end to end
through the CLI; missing, incomplete and corrupt data give errors that say what to do;
a user's own image folder with a custom timm architecture and a local checkpoint."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import clbench, only_record
from PIL import Image

from cl_bench.data.prepared import prepare
from cl_bench.data.sources.base import DataContext
from cl_bench.data.streams import build_stream
from cl_bench.experiments.names import resolve_backbone, resolve_stream
from cl_bench.training.registry import Registry
from cl_bench.utils.errors import ConfigError, MissingDataError, UnknownNameError
from cl_bench.utils.files import cache_dir

FOLDER_STREAMS = {  # name -> (folder under the data root, classes)
    "imagenet-r-b0inc20": ("imagenet-r", 200),
    "imagenet-a-b0inc20": ("imagenet-a", 200),
    "cub200-b0inc10": ("cub", 200),
    "omnibenchmark-b0inc30": ("omnibenchmark", 300),
    "vtab-b0inc10": ("vtab", 50),
    "objectnet-b0inc20": ("objectnet", 200),
}


def write_cifar100(root: Path, train_per_class: int = 2, test_per_class: int = 1) -> None:
    """torchvision's cifar-100-python/ layout: pickled dicts of 3,072-byte rows (the red,
    green and blue planes), fine labels and the label names in ``meta``."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"class{c:02d}" for c in range(100)]
    colours = rng.integers(0, 255, (100, 3))  # one per class, so that classes are learnable
    for part, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = [c for c in range(100) for _ in range(per_class)]
        data = np.stack([
            np.repeat(colours[label], 1024) + rng.integers(0, 20, 3072) for label in labels
        ]).clip(0, 255).astype(np.uint8)  # fmt: skip
        content = {"data": data, "fine_labels": labels, "coarse_labels": [0] * len(labels),
                   "filenames": [f"{part}_{i}.png" for i in range(len(labels))]}  # fmt: skip
        (folder / part).write_bytes(pickle.dumps(content))
    (folder / "meta").write_bytes(
        pickle.dumps({"fine_label_names": names, "coarse_label_names": ["all"]})
    )


def write_image_folder(root: Path, classes: int, per_split: int = 1) -> list[str]:
    """``root/train/<class>/*.jpg`` and ``root/test/<class>/*.jpg``, non-square photos."""
    rng = np.random.default_rng(1)
    names = [f"n{c:08d}" for c in range(classes)]
    for split in ("train", "test"):
        for index, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_split):
                pixels = np.full((30, 40, 3), (index * 37) % 255, dtype=np.uint8)
                pixels[:, :20] = rng.integers(0, 255, 3)
                Image.fromarray(pixels).save(folder / f"{split}_{i}.jpg")
    return names


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


def test_cifar100_stream_end_to_end(tmp_path):
    write_cifar100(tmp_path / "data")
    code, out, err = clbench(
        "--data-root", str(tmp_path / "data"), "evaluate",
        "--strategy", "simplecil", "--stream", "cifar100-b0inc10",
        "--output", str(tmp_path / "runs"),
    )  # fmt: skip
    assert code == 0, err
    _, record = only_record(tmp_path / "runs", 1993)
    info = record["stream_info"]
    assert info["train_images"] == 200 and info["test_images"] == 100
    assert info["classes_per_experience"][0] == list(range(10))
    assert len(record["metrics"]["accuracy_matrix"]) == 10
    # the PyCIL/PILOT class order: np.random.seed(1993); permutation(100)
    expected = np.random.RandomState(1993).permutation(100).tolist()
    assert info["class_order"] == expected
    assert info["class_names"][0] == f"class{expected[0]:02d}"
    assert record["metrics"]["last_accuracy"] > 20  # one colour per class; chance is 1
    # SEMA's table, as the spec holds it (checked in test_published_figures.py)
    assert "published: ViT-B/16 IN1K" in out and "82.31 avg / 76.21 last" in out


def test_cifar100_images_are_decoded_as_torchvision_does(tmp_path, registry):
    write_cifar100(tmp_path)
    spec = registry.stream("cifar100-b0inc5")
    data = prepare(spec, use_cache=False, context=DataContext(tmp_path))
    raw = pickle.loads((tmp_path / "cifar-100-python" / "train").read_bytes())
    first = raw["data"][0].reshape(3, 32, 32)  # the first training image, class 0
    assert torch.equal(data.images[0], torch.from_numpy(first))
    assert data.class_names[:2] == ("class00", "class01")
    assert int((~data.is_test).sum()) == 200 and int(data.is_test.sum()) == 100


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FOLDER_STREAMS))
def test_image_folder_streams_end_to_end(name, tmp_path, monkeypatch):
    folder, classes = FOLDER_STREAMS[name]
    names = write_image_folder(tmp_path / "data" / folder, classes)
    monkeypatch.setenv("CLBENCH_DATA_ROOT", str(tmp_path / "data"))
    code, _, err = clbench(
        "evaluate", "--strategy", "simplecil", "--stream", name,
        "--output", str(tmp_path / "runs"),
    )  # fmt: skip
    assert code == 0, err
    _, record = only_record(tmp_path / "runs", 1993)
    info = record["stream_info"]
    assert info["train_images"] == classes and info["test_images"] == classes
    assert info["resolution"] == 224 and info["fit"] == ["crop", 0.875]  # Lite0: the spec's
    # sorted folder order, then the seed's permutation, as ImageFolder + PyCIL
    order = np.random.RandomState(1993).permutation(classes).tolist()
    assert info["class_names"] == [names[c] for c in order]
    increment = int(name.rsplit("inc", 1)[1])
    assert len(info["classes_per_experience"]) == classes // increment


def test_crop_follows_timms_evaluation_transform(tmp_path, registry):
    """Short side to 224 / 0.875 = 256, centre crop 224: a 40 x 30 image's left colour
    band (20 px of 40) covers the left half of the crop, minus what the crop cut."""
    write_image_folder(tmp_path / "vtab", 50)
    spec = registry.stream("vtab-b0inc10")
    data = prepare(spec, use_cache=False, context=DataContext(tmp_path))
    assert data.images.shape[1:] == (3, 224, 224)
    image = data.images[0].permute(1, 2, 0).numpy().astype(int)
    left, right = image[:, 5], image[:, -5]
    assert (np.abs(left - left[0]) < 8).all() and (np.abs(right - right[0]) < 8).all()
    # resized to 341 x 256, the band ends at 170.7; the crop starts at (341 - 224) // 2 = 58
    row = image[112].sum(1)  # the band's edge: nearer the right colour than the left
    edge = np.flatnonzero(np.abs(row - left[0].sum()) > np.abs(row - right[0].sum()))[0]
    assert abs(edge - (170.7 - 58)) <= 2


def test_missing_data_names_the_place_and_how_to_obtain_it(tmp_path, registry):
    context = DataContext(tmp_path)
    with pytest.raises(MissingDataError, match=r"imagenet-r/train not found.*LAMDA-PILOT"):
        prepare(registry.stream("imagenet-r-b0inc20"), use_cache=False, context=context)
    fetch = r"cifar-100-python/train.*`clbench prepare --stream .* --download`"
    with pytest.raises(MissingDataError, match=fetch):
        prepare(registry.stream("cifar100-b0inc10"), use_cache=False, context=context)


def test_incomplete_and_corrupt_data_are_named(tmp_path, registry):
    spec = registry.stream("vtab-b0inc10")
    root = tmp_path / "vtab"
    names = write_image_folder(root, 50)
    context = DataContext(tmp_path)
    (root / "test" / names[3] / "test_0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(MissingDataError, match=r"cannot read image .*test_0\.jpg.*corrupt"):
        prepare(spec, use_cache=False, context=context)
    for file in (root / "test" / names[3]).iterdir():
        file.unlink()
    (root / "test" / names[3]).rmdir()
    with pytest.raises(MissingDataError, match=rf"only in train/: \['{names[3]}'\].*incomplete"):
        prepare(spec, use_cache=False, context=context)
    for split in ("train", "test"):
        for file in (root / split / names[4]).iterdir():
            file.unlink()
        (root / split / names[4]).rmdir()
    (root / "train" / names[3]).rename(tmp_path / "aside")
    with pytest.raises(MissingDataError, match=r"expected 50 classes .* found 48"):
        prepare(spec, use_cache=False, context=context)


def test_corrupt_cifar_file_is_named(tmp_path, registry):
    write_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"\x80\x04garbage")
    with pytest.raises(MissingDataError, match=r"cifar-100-python/train.*corrupt"):
        prepare(registry.stream("cifar100-b0inc10"), use_cache=False, context=DataContext(tmp_path))


def test_own_folder_with_custom_timm_architecture_and_local_weights(tmp_path):
    """A user's folder (B0 Inc2, their seed) on a ViT-Tiny shape loaded from a local file."""
    import timm
    from safetensors.torch import save_file

    write_image_folder(tmp_path / "mine", 6, per_split=2)
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    weights = tmp_path / "tiny.safetensors"
    save_file(model.state_dict(), str(weights))
    code, _, err = clbench(
        "evaluate", "--strategy", "simplecil",
        "--stream", str(tmp_path / "mine"), "--increment", "2", "--seed", "7",
        "--backbone", "timm:vit_tiny_patch16_224", "--weights", str(weights),
        "--output", str(tmp_path / "runs"),
    )  # fmt: skip
    assert code == 0, err
    path, record = only_record(tmp_path / "runs", 7)
    assert record["stream"] == "mine-b0inc2" and record["backbone"] == "timm:vit_tiny_patch16_224"
    assert path.parent.name == "timm--vit_tiny_patch16_224"  # a portable file name
    assert record["stream_info"]["class_order"] == np.random.RandomState(7).permutation(6).tolist()
    assert [len(c) for c in record["stream_info"]["classes_per_experience"]] == [2, 2, 2]
    assert record["backbone_weights"]["file"] == "tiny.safetensors"
    # a local checkpoint is part of the variant: another checkpoint never shares the record
    assert record["variant"] == f"weights={record['backbone_weights']['sha256'][:12]}"
    # cropped as the architecture's pretrained config says: 224 px, crop_pct 0.9
    assert record["stream_info"]["resolution"] == 224
    assert record["stream_info"]["fit"] == ["crop", 0.9]

    # The same run as a sweep cell, with the cache off: the same record, file name and all.
    cached = sorted(cache_dir().rglob("*"))
    code, _, err = clbench(
        "sweep", "--strategy", "simplecil",
        "--stream", str(tmp_path / "mine"), "--increment", "2", "--seed", "7",
        "--backbone", "timm:vit_tiny_patch16_224", "--weights", str(weights), "--no-cache",
        "--workers", "1", "--threads", "2", "--output", str(tmp_path / "swept"),
        "--leaderboards", str(tmp_path / "leaderboards"),
    )  # fmt: skip
    assert code == 0, err
    swept_path, swept = only_record(tmp_path / "swept", 7)
    assert swept_path.relative_to(tmp_path / "swept") == path.relative_to(tmp_path / "runs")
    for key in ("stream", "variant", "stream_info", "backbone_weights", "config"):
        assert swept[key] == record[key], key
    assert swept["metrics"]["correct"] == record["metrics"]["correct"]
    assert swept["resources"]["images_from_cache"] == 0
    assert swept["resources"]["torch_threads"] == 2  # as --threads asked
    assert sorted(cache_dir().rglob("*")) == cached  # --no-cache wrote nothing


def test_split_options_apply_to_folders_only(tmp_path, registry):
    with pytest.raises(ConfigError, match=r"increment and initial-classes \(--increment, --"):
        resolve_stream(registry, "cifar100-b0inc10", increment=5)
    with pytest.raises(MissingDataError, match="no stream spec file or image folder"):
        resolve_stream(registry, str(tmp_path / "petz"))
    with pytest.raises(UnknownNameError, match=r"'vit_tiny_patch16_22'.*vit_tiny_patch16_224"):
        resolve_backbone(registry, "timm:vit_tiny_patch16_22")
    with pytest.raises(MissingDataError, match=r"no image folder '.*minr'"):
        resolve_stream(registry, str(tmp_path / "minr"), increment=2)  # a typo, not a name
    write_image_folder(tmp_path / "mine", 6)
    with pytest.raises(ConfigError, match=r"has 6 classes in train/, fewer than the 10 .*--incr"):
        resolve_stream(registry, str(tmp_path / "mine"))  # B0 Inc10 by default
    spec = resolve_stream(registry, str(tmp_path / "mine"), increment=4, initial_classes=2)
    assert spec.name == "mine-b2inc4"  # different splits never share records
    stream = build_stream(spec, context=DataContext(tmp_path))
    assert [len(c) for c in stream.info.classes_per_experience] == [2, 4]


def test_stream_spec_file_by_path(tmp_path, registry):
    write_image_folder(tmp_path / "pets", 4)
    spec_file = tmp_path / "pets.yaml"
    spec_file.write_text(
        "name: pets\ndescription: my pets\nresolution: 64\nfit: crop\nincrement: 2\n"
        "sources:\n  - kind: image-folder\n    path: pets\n"
    )
    spec = resolve_stream(registry, str(spec_file))
    stream = build_stream(spec, context=DataContext(tmp_path))
    assert stream.info.resolution == 64 and len(stream.info.classes_per_experience) == 2
    impostor = tmp_path / "impostor.yaml"
    impostor.write_text(spec_file.read_text().replace("name: pets", "name: offline-mix"))
    with pytest.raises(ConfigError, match=r"'offline-mix', the name of an installed stream"):
        resolve_stream(registry, str(impostor))
    installed = Path(__file__).resolve().parents[1] / "streams" / "offline-mix.yaml"
    copy = tmp_path / "copy.yaml"
    text = installed.read_text()
    copy.write_text(text.replace('description: "', 'description: "my copy of it: ', 1))
    assert resolve_stream(registry, str(copy)).name == "offline-mix"  # the same stream
    copy.write_text(text.replace("increment: 5", "increment: 10", 1))
    with pytest.raises(ConfigError, match="with other data or splits"):
        resolve_stream(registry, str(copy))


def test_prepare_checks_and_caches_a_stream_for_a_backbone(tmp_path):
    import timm
    from safetensors.torch import save_file

    write_image_folder(tmp_path / "vtab", 50)
    root = ("--data-root", str(tmp_path))
    code, out, err = clbench(*root, "prepare", "--stream", "vtab-b0inc10")
    assert code == 0, err
    assert "224 px (crop, crop 0.875)" in out and "test images" in out
    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_file(timm.create_model("vit_tiny_patch16_224", num_classes=0).state_dict(), str(weights))
    code, out, err = clbench(
        *root, "prepare", "--stream", "vtab-b0inc10",
        "--backbone", "timm:vit_tiny_patch16_224", "--weights", str(weights),
    )  # fmt: skip
    assert code == 0, err
    assert "224 px (crop, crop 0.9)" in out
    code, _, err = clbench(*root, "prepare", "--stream", "imagenet-a-b0inc20")
    assert code != 0 and "imagenet-a/train not found" in err and "LAMDA-PILOT" in err


def test_one_preparation_serves_every_split_of_a_folder(tmp_path, monkeypatch):
    """`prepare --increment 2` on a small folder, then a run at another increment: the
    images are decoded once (the cache holds images, not the split into experiences)."""
    from cl_bench.data import prepared

    write_image_folder(tmp_path / "few", 4)
    folder = str(tmp_path / "few")
    code, _, err = clbench("prepare", "--stream", folder)
    assert code == 2 and "has 4 classes in train/" in " ".join(err.split())
    code, out, err = clbench("prepare", "--stream", folder,
                             "--increment", "2")  # fmt: skip
    assert code == 0 and "stream few-b0inc2" in out, err

    def decode_again(*args):
        raise AssertionError("the prepared images were not reused")

    monkeypatch.setattr(prepared, "_load_and_split", decode_again)
    spec = resolve_stream(Registry.discover(), folder, increment=1, initial_classes=3)
    assert prepared.prepare(spec.fitted_to(224, 0.875)).class_names == tuple(sorted(
        path.name for path in (tmp_path / "few" / "train").iterdir()
    ))  # fmt: skip

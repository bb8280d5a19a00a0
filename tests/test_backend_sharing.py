"""The backend across runs: one backbone per process, each image through it once per sweep."""

from __future__ import annotations

import shutil

import pytest
from cli_runner import clbench

from cl_bench.data.prepared import prepare
from cl_bench.experiments.runs import RunSpec, evaluate_run
from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.models.backend import shared_backend
from cl_bench.models.feature_cache import FeatureCache
from cl_bench.training.registry import Registry
from cl_bench.utils.files import CACHE_ENV


@pytest.fixture
def fresh_feature_cache(tmp_path, monkeypatch, isolated_cache, offline_spec):
    """An empty feature cache holding the session's prepared offline default and nothing
    else (no re-decoding; streams other tests prepared earlier are left out, so that
    what the cache holds does not depend on the order tests run in)."""
    prepare(offline_spec)  # make sure the session cache holds the prepared stream
    (tmp_path / "streams").mkdir()
    for path in (isolated_cache / "streams").glob("offline-mix-*.pt"):
        shutil.copy2(path, tmp_path / "streams" / path.name)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path


def test_one_backbone_instance_per_process():
    spec = Registry.discover().backbone("efficientnet_lite0")
    first = shared_backend(spec, BackboneOptions(image_size=64))
    second = shared_backend(spec, BackboneOptions(image_size=64))
    assert first is second
    other = shared_backend(spec, BackboneOptions(image_size=32))
    assert other is not first


@pytest.mark.slow
def test_sweep_of_frozen_feature_strategies_forwards_each_image_once(fresh_feature_cache):
    registry = Registry.discover()
    runs = [("simplecil", 1993), ("finetune-head", 1993), ("simplecil", 1994)]
    records = [
        evaluate_run(RunSpec(name, "offline-mix", "efficientnet_lite0", seed,
                             limit_per_class=3, device="cpu"), registry)
        for name, seed in runs
    ]  # fmt: skip
    forwarded = [r["resources"]["frozen_images_forwarded"] for r in records]
    # Every image of the prepared stream, once: the backend registers all of them (not
    # only the 3 a class this run trains on) and fills the cache over the whole dataset.
    assert forwarded[0] == len(prepare(registry.stream("offline-mix")).images)
    assert forwarded[1:] == [0, 0]
    assert all(r["resources"]["images_from_cache"] > 0 for r in records)
    # The cache changes nothing but the time.
    uncached = evaluate_run(RunSpec("simplecil", "offline-mix", "efficientnet_lite0", 1993,
                                    limit_per_class=3, device="cpu", use_cache=False),
                            registry)  # fmt: skip
    assert uncached["metrics"] == records[0]["metrics"]
    assert uncached["resources"]["images_from_cache"] == 0


def test_cache_cli_shows_and_frees_entries(fresh_feature_cache):
    cache = ("--cache-dir", str(fresh_feature_cache))
    code, _, err = clbench(*cache, "evaluate", "--strategy", "simplecil", "--limit-per-class",
                           "2", "--output", str(fresh_feature_cache / "runs"))  # fmt: skip
    assert code == 0, err
    entries = FeatureCache(fresh_feature_cache / "features").info().entries
    assert entries >= 1
    code, out, _ = clbench(*cache, "cache", "info")
    assert code == 0
    assert "frozen features" in out and str(fresh_feature_cache / "features") in out
    code, _, err = clbench(*cache, "cache", "clear")
    assert code == 0
    assert f"removed {entries} feature entries and 1 prepared streams" in err
    assert FeatureCache(fresh_feature_cache / "features").info().entries == 0

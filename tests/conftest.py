from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache per test session: prepared streams are built once and shared by tests."""
    path = tmp_path_factory.mktemp("clbench-cache")
    os.environ["CLBENCH_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def offline_spec():
    from cl_bench.registry import Registry

    return Registry.discover().stream("offline-mix")


@pytest.fixture(scope="session")
def lite0():
    from cl_bench.backbones.base import BackboneOptions
    from cl_bench.backbones.packaged import EFFICIENTNET_LITE0

    return EFFICIENTNET_LITE0.load(BackboneOptions())

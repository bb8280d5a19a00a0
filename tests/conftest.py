from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from cl_bench.data.experience import StreamInfo

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Domains:
    """Three experiences (digits, clothes, clip art: 5 classes each) and spare images."""

    experiences: list
    held_out: dict

    @property
    def info(self) -> StreamInfo:
        return StreamInfo(
            "three-domains",
            tuple(f"c{i}" for i in range(15)),
            ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9), (10, 11, 12, 13, 14)),
            64,
        )


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache per test session: prepared streams are built once and shared by tests."""
    path = tmp_path_factory.mktemp("clbench-cache")
    os.environ["CLBENCH_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def offline_spec():
    from cl_bench.training.registry import Registry

    return Registry.discover().stream("offline-mix")


@pytest.fixture(scope="session")
def domains(offline_spec):
    """Five classes of each domain of the offline default, relabelled 0..14, 24 images each."""
    import torch

    from cl_bench.data.experience import Experience
    from cl_bench.data.prepared import prepare

    data = prepare(offline_spec)
    picked = {"mnist": [], "fashion": [], "clipart": []}
    for label, name in enumerate(data.class_names):
        domain = name.split()[0]
        if len(picked[domain]) < 5:
            picked[domain].append(label)
    experiences, held_out = [], {}
    for index, domain in enumerate(("mnist", "fashion", "clipart")):
        images, labels, spare = [], [], []
        for offset, label in enumerate(picked[domain]):
            rows = (data.labels == label).nonzero().squeeze(1)
            images.append(data.images[rows[:24]])
            labels += [5 * index + offset] * 24
            spare.append(data.images[rows[24:40]])
        classes = tuple(range(5 * index, 5 * index + 5))
        experiences.append(Experience(index, classes, torch.cat(images), torch.tensor(labels)))
        held_out[domain] = torch.cat(spare)
    return Domains(experiences, held_out)


@pytest.fixture(scope="session")
def lite0():
    from cl_bench.models.backbones.base import BackboneOptions
    from cl_bench.models.backbones.packaged import EFFICIENTNET_LITE0

    return EFFICIENTNET_LITE0.load(BackboneOptions())


@pytest.fixture(scope="session")
def cached_backend(lite0):
    """One backend with the feature cache on, for tests that run whole streams: the
    frozen features of a stream are computed once per session, as in a sweep."""
    from cl_bench.models.backend import Backend
    from cl_bench.models.feature_cache import FeatureCache

    return Backend(lite0, FeatureCache())


@pytest.fixture(scope="module")
def browser():
    """The system Chromium driven by Playwright (its own browser download is not
    reachable here), one per test module."""
    from browser import CHROMIUM
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "no chromium: `apt-get install chromium` (scripts/setup.sh installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def ray_tmpdir(monkeypatch):
    """A short temp dir for a Ray instance the test starts (unix socket paths must be
    short), no cluster address from the environment, and Ray shut down afterwards."""
    import shutil
    import tempfile

    ray = pytest.importorskip("ray")
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", folder)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    try:
        yield Path(folder)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)

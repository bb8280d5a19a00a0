"""Shared set-up for the backend benchmarks: the offline default stream and its backbone."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from cl_bench.data.streams import build_stream
from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.models.backend import Backend
from cl_bench.training.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def offline_stream(seed: int = 1993):
    registry = Registry.discover()
    return build_stream(registry.stream("offline-mix"), seed=seed)


def backend(name: str = "efficientnet_lite0", image_size: int = 64) -> Backend:
    spec = Registry.discover().backbone(name)
    return Backend(spec.load(BackboneOptions(image_size=image_size)))


def strategy_on_offline_default(name: str, seed: int, assignments: list[str]):
    """``(strategy, stream, backend)``: ``name`` with ``--set``-style overrides, on the
    offline default and Lite0 with the feature cache, seeded as the runner seeds."""
    from cl_bench.evaluation.protocol import seed_everything
    from cl_bench.models.feature_cache import FeatureCache
    from cl_bench.training.strategy import Runtime
    from cl_bench.utils.config import build_config, parse_assignments

    registry = Registry.discover()
    stream_spec, spec = registry.stream("offline-mix"), registry.strategy(name)
    options = BackboneOptions(image_size=stream_spec.resolution)
    backend = Backend(registry.backbone("efficientnet_lite0").load(options), FeatureCache())
    stream = build_stream(stream_spec, seed=seed)
    backend.register(stream.data.images)
    seed_everything(seed)
    config = build_config(spec.strategy.Config, parse_assignments(assignments))
    strategy = spec.strategy(backbone=backend, stream=stream.info, config=config,
                             runtime=Runtime(device=backend.device, seed=seed))  # fmt: skip
    return strategy, stream, backend


def install_template_plugin() -> Path:
    """pip-install plugins/template into a temporary folder and put it on sys.path."""
    target = Path(tempfile.mkdtemp(prefix="clbench-template-"))
    source = Path(tempfile.mkdtemp(prefix="clbench-template-src-"))
    subprocess.run(["cp", "-r", str(ROOT / "plugins" / "template"), str(source)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source / "template")],
        check=True,
    )  # fmt: skip
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])
    return target


def machine() -> str:
    return f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"

"""The cluster recipes in deploy/ and the Dockerfile cannot be run here (no cloud, no
Kubernetes, no container daemon): each is read and checked for what makes it a clbench
sweep on GPUs, so that a renamed option or a lost GPU request fails a test."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner

from cl_bench.cli import cli
from cl_bench.cli.sweep import sweep

ROOT = Path(__file__).resolve().parent.parent


def sweep_accepts(command: str) -> None:
    """``command`` is a ``clbench sweep`` invocation whose options the CLI knows."""
    words = shlex.split(command)
    assert words[:2] == ["clbench", "sweep"], command
    assert "--executor" in words and words[words.index("--executor") + 1] == "ray"
    known = {option for parameter in sweep.params for option in parameter.opts}
    assert {word for word in words if word.startswith("--")} <= known, command


def test_the_ray_up_config_runs_clbench_images_with_gpu_workers():
    path = ROOT / "deploy" / "ray-cluster-aws.yaml"
    config = yaml.safe_load(path.read_text())
    assert config["docker"]["image"].endswith("/clbench:cuda")
    workers = [node for name, node in config["available_node_types"].items()
               if name != config["head_node_type"]]  # fmt: skip
    assert workers and all(node["resources"]["GPU"] >= 1 for node in workers)
    assert config["available_node_types"][config["head_node_type"]]["resources"]["CPU"] == 0
    [command] = re.findall(r"'(clbench sweep [^']+)'", path.read_text())  # its usage line
    sweep_accepts(command)
    assert "--gpus-per-run" in command


def test_the_kuberay_job_runs_the_sweep_on_gpu_workers():
    job = yaml.safe_load((ROOT / "deploy" / "kuberay-rayjob.yaml").read_text())
    assert job["kind"] == "RayJob"
    sweep_accepts(job["spec"]["entrypoint"])
    cluster = job["spec"]["rayClusterSpec"]
    for group in cluster["workerGroupSpecs"]:
        [container] = group["template"]["spec"]["containers"]
        assert container["image"].endswith("/clbench:cuda")
        assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1
        assert int(group["rayStartParams"]["num-gpus"]) >= 1
    import ray

    assert cluster["rayVersion"] == ray.__version__  # the Ray that clbench[ray] pins


def test_the_dockerfile_builds_both_variants_with_the_ray_extra():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11", text, re.MULTILINE)  # the CPU variant
    assert "--build-arg BASE=nvidia/cuda" in text  # the CUDA one, documented
    assert 'pip install ".[ray]"' in text
    for folder in ("cl_bench", "plugins", "streams"):
        assert f"COPY {folder} ./{folder}" in text
    assert CliRunner().invoke(cli, ["--help"]).exit_code == 0  # its CMD

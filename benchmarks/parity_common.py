"""What every forward and step check of parity_vs_official.py shares: one randomly
initialised ViT-Tiny file for both sides (no ViT weights exist offline), clbench's
backend serving it, the tolerance, and the fingerprints that tests/test_parity*.py
compare against the saved official outputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "parity.json"
FIXTURES = ROOT / "tests" / "fixtures" / "parity"
VIT_SEED, VIT_WIDTH, VIT_DEPTH = 0, 192, 12
FORWARD_TOLERANCE = 1e-5  # relative, float32 on a CPU


def export_vit(work: Path) -> Path:
    """A randomly initialised ViT-Tiny (no ViT weights exist offline), seeded."""
    import timm

    torch.manual_seed(VIT_SEED)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    path = work / "vit_tiny.pth"
    torch.save(model.state_dict(), path)
    return path


def vit_backend(vit: Path):
    """clbench's backend serving the benchmark's ViT-Tiny file, as ``--backbone
    timm:vit_tiny_patch16_224 --weights`` does."""
    from cl_bench.experiments.names import resolve_backbone
    from cl_bench.models.backbones.base import BackboneOptions
    from cl_bench.models.backend import Backend
    from cl_bench.training.registry import Registry

    backbone = resolve_backbone(Registry.discover(), "timm:vit_tiny_patch16_224").load(
        BackboneOptions(weights=vit, image_size=224)
    )
    return Backend(backbone)


def inputs_sha256(vit: Path, inputs: Path) -> str:
    """One checksum of the regenerated inputs (weights, images, adapters), tensor by
    tensor, so that the test can tell a changed input from a changed computation."""
    digest = hashlib.sha256()
    given = torch.load(inputs)
    for state in (torch.load(vit), {"images": given["images"]}, given["adapters"]):
        for key in sorted(state):
            digest.update(key.encode())
            digest.update(state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def update_sketch(start: dict, after: dict) -> torch.Tensor:
    """Each adapter tensor's update as its norm and its products with 4 seeded random
    directions: a few hundred numbers that any change to the step would move, where the
    updates themselves are 1.2 MB."""
    rows = []
    for key in sorted(start):
        update = (after[key] - start[key]).flatten().double()
        directions = torch.randn(4, update.numel(), dtype=torch.float64,
                                 generator=torch.Generator().manual_seed(len(rows)))  # fmt: skip
        rows.append(torch.cat([update.norm().view(1), directions @ update]))
    return torch.stack(rows)


def tensors_sha256(*states: dict[str, torch.Tensor]) -> str:
    """One checksum of dicts of tensors, key by key: the seeded inputs of a check, so that
    a test can tell a changed input (another torch or timm draws differently) from a
    changed computation."""
    digest = hashlib.sha256()
    for state in states:
        for key in sorted(state):
            digest.update(key.encode())
            digest.update(state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[float, float]:
    """(largest absolute difference, that difference over the official output's largest
    magnitude): the figures every forward check reports."""
    difference = (ours - theirs).abs().max().item()
    return difference, difference / theirs.abs().max().item()


def run_official(python: str, copy: Path, module: str, args: list[str], threads: int,
                 log: Path) -> dict:  # fmt: skip
    """``python module *args threads`` in the official copy (a child process, as the
    timed runs are): the JSON its ``CLBENCH-PARITY`` line printed."""
    import json

    from bench_vs_official import child_env, run_measured

    argv = [python, module, *args, str(threads)]
    run_measured(argv, copy, child_env(threads, {"PYTHONPATH": str(copy)}), log)
    [line] = [x for x in log.read_text().splitlines() if x.startswith("CLBENCH-PARITY ")]
    return json.loads(line.removeprefix("CLBENCH-PARITY "))


def prepare_copy(checkout: Path, dest: Path, changes, added: str, text: str) -> None:
    """A fresh copy of an official checkout at ``dest``, every change applied (each exact,
    or :class:`official_runtime.ChangeDoesNotApply`), and our driver module ``added``."""
    import shutil

    from official_runtime import substitute

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(checkout, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", "logs"))
    for change in changes:
        substitute(dest, change)
    (dest / added).write_text(text)

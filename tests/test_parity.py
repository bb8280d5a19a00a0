"""clbench's side of the parity with the official code, without the official code:
benchmarks/parity_vs_official.py saved the official code's output on inputs that are
regenerated here from seeds (numbers only, tests/fixtures/parity/), and clbench must
give that output again. A change to how adapters join a ViT block fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "parity"


@pytest.fixture(scope="module")
def parity():
    return load_script("benchmarks/parity_vs_official.py")


def test_aper_adapted_features_are_the_official_codes(parity, tmp_path):
    fixture = torch.load(FIXTURES / "aper_forward.pt")
    vit, inputs = parity.export_vit(tmp_path), parity.forward_inputs(tmp_path)
    assert parity.inputs_sha256(vit, inputs) == fixture["inputs_sha256"], (
        "the seeded inputs are not those of the fixture (another timm or torch initialises "
        "differently): rerun benchmarks/parity_vs_official.py --methods aper"
    )
    theirs = fixture["official_features"]
    ours = parity.clbench_aper_features(vit, inputs)
    relative = ((ours - theirs).abs().max() / theirs.abs().max()).item()
    assert relative <= parity.FORWARD_TOLERANCE
    # the adapters matter: the frozen network alone is far from the official output
    assert parity.clbench_frozen_gap(vit, inputs, theirs) > 100 * parity.FORWARD_TOLERANCE


def test_one_step_of_aper_training_is_the_official_codes(parity, tmp_path):
    """From the same adapters and cosine head, one SGD step of clbench's first-session
    training moves every adapter tensor as PILOT's step does (compared as sketches of
    the updates: norms and products with seeded directions)."""
    fixture = torch.load(FIXTURES / "aper_step.pt")
    vit = parity.export_vit(tmp_path)
    inputs, ours = parity.clbench_aper_step(vit, tmp_path)
    assert parity.inputs_sha256(vit, inputs) == fixture["inputs_sha256"]
    start = torch.load(inputs)["adapters"]
    theirs = fixture["official_update_sketch"]
    difference = (parity.update_sketch(start, ours) - theirs).abs().max()
    assert difference <= 1e-4 * theirs.abs().max()

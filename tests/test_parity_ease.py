"""clbench's EASE against LAMDA-PILOT's, without PILOT: benchmarks/parity_ease.py saved
the official outputs on inputs regenerated here from seeds (numbers only,
tests/fixtures/parity/ease_*.pt), and clbench must give them again. A change to how
EASE builds its subspaces, its prototypes and their complement, weighs the subspaces in
its logits or trains a new subspace fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "parity"
export_vit = load_script("benchmarks/parity_common.py").export_vit
RERUN = (
    "rerun benchmarks/parity_vs_official.py --methods ease ease-step (another timm or "
    "torch draws the inputs differently)"
)


@pytest.fixture(scope="module")
def parity():
    return load_script("benchmarks/parity_ease.py")


@pytest.fixture(scope="module")
def vit(parity, tmp_path_factory):
    return export_vit(tmp_path_factory.mktemp("vit"))


def test_ease_subspaces_prototypes_and_logits_are_the_official_codes(parity, vit, tmp_path):
    """Three sessions of drawn subspaces: each subspace's features, the prototypes (class
    means and the semantic-guided complement) and the reweighted logits as PILOT's."""
    fixture = torch.load(FIXTURES / "ease_forward.pt")
    inputs = parity.forward_inputs(tmp_path)
    assert parity.forward_sha256(vit, inputs) == fixture["inputs_sha256"], RERUN
    theirs = {k.removeprefix("official_"): v for k, v in fixture.items()
              if k.startswith("official_")}  # fmt: skip
    ours = parity.clbench_ease(vit, inputs)
    compared = parity.forward_comparison(ours, theirs, parity.SESSIONS, parity.CLASSES)
    for name, figures in compared.items():
        if "max_relative_difference" in figures:
            assert figures["max_relative_difference"] <= parity.FORWARD_TOLERANCE, name
    images = parity.TEST_IMAGES
    assert compared["predicted class"]["agreement"] == f"{images}/{images} images"
    # the adapters matter: the frozen network alone is far from every official subspace
    assert parity.frozen_gap(ours["frozen"], theirs["subspaces"]) > 100 * parity.FORWARD_TOLERANCE


def test_one_step_of_a_new_ease_subspace_is_the_official_codes(parity, vit, tmp_path):
    """From the same fresh adapters and cosine head, one SGD step of EASE's second session
    moves every adapter tensor and the head as PILOT's step does (the adapters compared as
    sketches of their updates, the head in full), and the finished subspace not at all."""
    fixture = torch.load(FIXTURES / "ease_step.pt")
    inputs, ours = parity.clbench_ease_step(vit, tmp_path)
    assert parity.step_sha256(vit, inputs) == fixture["inputs_sha256"], RERUN
    given = torch.load(inputs)
    start = {"adapters": given["adapters"], "head": given["head"]}
    theirs = fixture["official_update_sketch"]
    sketch = parity.update_sketch(start["adapters"], ours["adapters"])
    relative = ((sketch - theirs).abs().max() / theirs.abs().max()).item()
    assert relative <= parity.FORWARD_TOLERANCE, "the new subspace's adapters"
    for key, official in fixture["official_head"].items():
        update = (official - start["head"][key]).abs().max()
        relative = ((ours["head"][key] - official).abs().max() / update).item()
        assert relative <= parity.FORWARD_TOLERANCE, f"the head's {key}"
    for key, value in given["first"].items():
        assert torch.equal(ours["first"][key], value), key

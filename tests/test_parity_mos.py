"""clbench's MOS against the official AAAI25-MOS outputs, without the official code:
benchmarks/parity_mos.py saved what the code computed on inputs that are regenerated here
from seeds (numbers only, tests/fixtures/parity/mos_*.pt), and clbench must compute it
again. A change to MOS's adapter retrieval, its prototype or head scores, how its
adapters join a ViT block, its loss, optimiser or adapter merge fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "parity"
export_vit = load_script("benchmarks/parity_common.py").export_vit
RERUN = (
    "the seeded inputs are not those of the fixture (another timm or torch initialises "
    "differently): rerun benchmarks/parity_vs_official.py --methods mos mos-step"
)


@pytest.fixture(scope="module")
def parity():
    return load_script("benchmarks/parity_mos.py")


def test_mos_features_and_retrieval_are_the_official_codes(parity, tmp_path):
    """After three tasks, from the same stored adapter sets, head and prototypes: every
    set's features, the prototype and final head logits, the scores, and which set each
    image is routed to in how many rounds, as the code's _eval_cnn computed them."""
    fixture = torch.load(FIXTURES / "mos_forward.pt")
    vit = export_vit(tmp_path)
    inputs = parity.forward_inputs(vit, tmp_path)
    assert parity.inputs_sha256(vit, inputs) == fixture["inputs_sha256"], RERUN
    theirs = fixture["official"]
    # the inputs take every path of the retrieval: each set chosen, 1 to 4 rounds
    assert set(theirs["task"].tolist()) == set(range(parity.TASKS))
    assert set(theirs["rounds"].tolist()) == {1, 2, 3, 4}
    compared = parity.compare_forward(parity.clbench_mos_forward(vit, inputs), theirs)
    for name, entry in compared.items():
        if "agreement" in entry:
            assert entry["agreement"] == f"{len(theirs['task'])}/{len(theirs['task'])} images", name
        else:
            assert entry["max_relative_difference"] <= parity.FORWARD_TOLERANCE, (name, entry)
    # the adapters matter: the frozen network alone is far from the official features
    assert parity.frozen_gap(vit, inputs, theirs) > 100 * parity.FORWARD_TOLERANCE


def test_one_step_of_mos_training_is_the_official_codes(parity, tmp_path):
    """From the same current and stored sets, head and stored class means, one step of
    clbench's adapter training (masked cross-entropy + orthogonality term, SGD, merge)
    moves the current set (compared as sketches of its update: norms and products with
    seeded directions) and the head (compared whole) as the code's _init_train does,
    relative to the official step's largest update."""
    fixture = torch.load(FIXTURES / "mos_step.pt")
    vit = export_vit(tmp_path)
    inputs = parity.step_inputs(vit, tmp_path, fixture["class_means"])
    assert parity.inputs_sha256(vit, inputs) == fixture["inputs_sha256"], RERUN
    start = parity._start(inputs)
    ours = parity.clbench_mos_step(vit, inputs)
    theirs = fixture["official_adapter_sketch"]
    sketch = ((parity.adapter_sketch(start, ours) - theirs).abs().max() / theirs.abs().max()).item()
    assert sketch <= parity.FORWARD_TOLERANCE, f"adapter updates differ by {sketch:.2e}"
    head = parity.head_update(start, ours) - fixture["official_head_update"]
    head = head.abs().max().item() / fixture["largest_official_update"]
    assert head <= parity.FORWARD_TOLERANCE, f"head updates differ by {head:.2e}"

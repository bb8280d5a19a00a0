"""The paper-parity script's mechanics on the CPU: generated CIFAR-100 and ImageNet-R files
in their real formats, a tiny random ViT given as a local checkpoint, each strategy's
official settings applied, clbench's numbers printed beside the published ones (the
numbers themselves mean nothing here)."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from script_loader import load_script
from test_standard_streams import write_cifar100, write_image_folder

from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.models.backbones.hub import tiny_vit
from cl_bench.results.records import iter_records


def paper_parity():
    return load_script("scripts/paper_parity.py")


def parity(*arguments: str) -> str:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("COLUMNS", "250")  # the whole table, as a wide terminal shows it
        assert paper_parity().main(list(arguments)) == 0
    return out.getvalue()


@pytest.mark.slow
def test_parity_runs_the_published_settings_and_prints_them_beside_the_papers(tmp_path):
    write_cifar100(tmp_path / "data")
    write_image_folder(tmp_path / "data" / "imagenet-r", 200)
    weights = tmp_path / "tiny32.pth"  # the tiny ViT is built to the stream's resolution
    torch.save(tiny_vit(BackboneOptions(image_size=32)).model.state_dict(), weights)
    common = ["--data-root", str(tmp_path / "data"), "--backbone", "vit_tiny_random",
              "--device", "cpu", "--output", str(tmp_path / "runs"),
              "--strategy", "simplecil", "--strategy", "sema",
              "--set", "sema.func_epochs=1", "--set", "sema.rd_epochs=1"]  # fmt: skip
    cifar = [*common, "--stream", "cifar100-b0inc10", "--weights", str(weights)]
    cifar_table = parity(*cifar)
    inr_table = parity(*common, "--stream", "imagenet-r-b0inc20")
    records = {(r["stream"], r["strategy"]): r for _, r in iter_records(tmp_path / "runs")}
    assert set(records) == {(s, m) for s in ("cifar100-b0inc10", "imagenet-r-b0inc20")
                            for m in ("simplecil", "sema")}  # fmt: skip
    sema_r = records["imagenet-r-b0inc20", "sema"]
    # SEMA-CL's ImageNet-R file, its augmentation, and the changed epochs as the variant
    assert sema_r["recipe"]["official_source"].endswith("exps/sema_inr_10task.json (B0 Inc20)")
    assert sema_r["config"]["augment"] is True and sema_r["config"]["threshold"] == 2.0
    assert sema_r["config"]["func_epochs"] == 1 and "func_epochs=1" in sema_r["variant"]
    sema_c = records["cifar100-b0inc10", "sema"]
    assert sema_c["recipe"]["official_source"].endswith("exps/sema_cifar.json")
    assert sema_c["backbone_weights"]["file"] == "tiny32.pth"
    # SEMA's published ImageNet-R and CIFAR-100 figures, as the specs hold them (checked
    # against the papers' tables in test_published_figures.py)
    assert "83.56" in inr_table and "78.00" in inr_table
    assert "91.37" in cifar_table
    assert f"{sema_r['metrics']['last_accuracy']:.2f}" in inr_table
    assert f"{sema_c['metrics']['last_accuracy']:.2f}" in cifar_table
    assert parity(*cifar).count("record exists, reused") == 2  # a rerun resumes

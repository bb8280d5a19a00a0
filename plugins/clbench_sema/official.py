"""SEMA-CL's per-data-set configs (``exps/*.json`` at commit 5a45512, the CVPR 2025 code),
as clbench config values. Every file trains with RandomResizedCrop + flip (``augment``).

The keys the files share (batch 32, lr 0.005, descriptor lr 0.01, 20 descriptor epochs,
bottleneck 16, descriptor width 128, buffer 500, detection batch 128, weight decay
5e-4, the last three blocks expandable) are the Config defaults; the files differ in
``func_epoch`` and ``exp_threshold`` only. There is no file for CUB, OmniBenchmark or
ObjectNet: those streams run the Config defaults.
"""

from __future__ import annotations

from cl_bench import OfficialSettings

_CODE = "SEMA-CL 5a45512"

OFFICIAL = (
    OfficialSettings("cifar100", {"func_epochs": 5, "threshold": 2.0, "augment": True},
                     f"{_CODE} exps/sema_cifar.json"),
    OfficialSettings("imagenet-r", {"func_epochs": 20, "threshold": 2.0, "augment": True},
                     f"{_CODE} exps/sema_inr_10task.json (B0 Inc20)"),
    OfficialSettings("imagenet-a", {"func_epochs": 20, "threshold": 1.0, "augment": True},
                     f"{_CODE} exps/sema_ina.json"),
    OfficialSettings("vtab", {"func_epochs": 20, "threshold": 1.0, "augment": True},
                     f"{_CODE} exps/sema_vtab.json"),
)  # fmt: skip

"""AAAI25-MOS's per-data-set configs (``exps/mos_*.json`` at commit 8d5e07c), as clbench
config values. Every file trains with RandomResizedCrop + flip (``augment``).

The code's keys map as: ``tuned_epoch`` -> epochs, ``init_lr`` -> lr, ``batch_size``,
``weight_decay``, ``ca_storage_efficient_method`` -> class_statistics; the alignment
draws ``5 x batch_size`` features per class (samples_per_class). The keys all files
share (adapter momentum 0.1, orthogonality weight 0.1, 30 alignment epochs at lr 0.005,
bottleneck 16) are the Config defaults. The ``_in21k`` files differ only in the
backbone, which is chosen with ``--backbone``/``--weights``.
"""

from __future__ import annotations

from cl_bench import OfficialSettings

_CODE = "AAAI25-MOS 8d5e07c"


def _mos(file: str, family: str, epochs: int, lr: float, batch: int, decay: float,
         statistics: str = "covariance") -> OfficialSettings:  # fmt: skip
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch, "weight_decay": decay,
                "samples_per_class": 5 * batch, "class_statistics": statistics,
                "augment": True}  # fmt: skip
    return OfficialSettings(family, settings, f"{_CODE} exps/{file}.json")


OFFICIAL = (
    _mos("mos_cifar", "cifar100", 20, 0.03, 48, 5e-4),
    _mos("mos_inr", "imagenet-r", 10, 0.05, 16, 5e-3),
    _mos("mos_ina", "imagenet-a", 10, 0.05, 32, 5e-3, "variance"),
    _mos("mos_cub", "cub", 10, 0.01, 32, 5e-4),
    _mos("mos_omni", "omnibenchmark", 10, 0.01, 16, 5e-4),
    _mos("mos_vtab", "vtab", 20, 0.03, 32, 5e-3),
    _mos("mos_obj", "objectnet", 10, 0.05, 48, 5e-3),
)

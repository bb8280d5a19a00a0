"""LAMDA-PILOT's per-data-set configs (``exps/*.json`` at commit 2647455), as clbench config
values. PILOT ships CIFAR-100 and ImageNet-R files only; every one trains with
RandomResizedCrop + flip (``augment``). The adaptation keys map as ``tuned_epoch``
(EASE: ``init_epochs``/``later_epochs``) -> epochs, ``init_lr`` -> lr, ``batch_size``,
``weight_decay``; ``ffn_num`` 64 and RanPAC's ``M`` 10000 are the Config defaults.
FeCAM's settings only matter with ``adapt_first_session=true`` (PILOT's FeCAM adapts;
the authors' ViT setting, the default here, does not train).
"""

from __future__ import annotations

from cl_bench import OfficialSettings

_CODE = "LAMDA-PILOT 2647455"


def _pilot(files: tuple[str, str], cifar: tuple, imagenet_r: tuple) -> tuple[OfficialSettings, ...]:
    """``cifar`` and ``imagenet_r``: (epochs, lr, batch size, weight decay)."""
    keys = ("epochs", "lr", "batch_size", "weight_decay")
    families = ("cifar100", "imagenet-r")
    return tuple(
        OfficialSettings(family, {**dict(zip(keys, values, strict=True)), "augment": True},
                         f"{_CODE} exps/{file}.json")
        for family, file, values in zip(families, files, (cifar, imagenet_r), strict=True)
    )  # fmt: skip


_ADAPTER = ((20, 0.01, 48, 5e-4), (10, 0.05, 16, 5e-3))  # RanPAC, APER and FeCAM share them
RANPAC = _pilot(("ranpac", "ranpac_inr"), *_ADAPTER)
APER = _pilot(("aper_aperpter", "aper_aperpter_inr"), *_ADAPTER)
FECAM = _pilot(("fecam", "fecam_inr"), *_ADAPTER)
EASE = _pilot(("ease", "ease_inr"), (20, 0.025, 48, 5e-4), (20, 0.05, 16, 5e-3))

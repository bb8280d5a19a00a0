"""The published figures in the stream specs against a second transcription of the papers'
tables: the one quoted in the project's method notes (shared/notes/methods.md,
"Published numbers"), typed here separately from the specs. A figure mistyped in a spec,
attributed to the wrong backbone or paper, or dropped from it, fails here; the parity
table and ``clbench evaluate`` print the spec's figures, so what they show rests on this
check. Figures with no second source are not allowed in a spec."""

from __future__ import annotations

import pytest

from cl_bench.training.registry import Registry

MOS = "Sun et al., AAAI 2025 (MOS)"  # Table 1, ViT-B/16 IN21K
SEMA = "Wang et al., CVPR 2025 (SEMA)"  # ViT-B/16 IN1K, 10 tasks
RANPAC = "McDonnell et al., NeurIPS 2023 (RanPAC)"  # last accuracy only
IN21K, IN1K = "ViT-B/16 IN21K", "ViT-B/16 IN1K"

# (stream, strategy, backbone) -> (average incremental, last accuracy, paper), in %
PAPERS = {
    ("cifar100-b0inc5", "simplecil", IN21K): (87.57, 81.26, MOS),
    ("cifar100-b0inc5", "aper-adapter", IN21K): (90.65, 85.15, MOS),
    ("cifar100-b0inc5", "ease", IN21K): (91.51, 85.80, MOS),
    ("cifar100-b0inc5", "mos", IN21K): (93.30, 89.25, MOS),
    ("imagenet-r-b0inc20", "simplecil", IN21K): (61.26, 54.55, MOS),
    ("imagenet-r-b0inc20", "mos", IN21K): (82.96, 77.93, MOS),
    ("imagenet-a-b0inc20", "mos", IN21K): (69.13, 59.12, MOS),
    ("vtab-b0inc10", "mos", IN21K): (92.62, 92.79, MOS),
    ("cifar100-b0inc10", "simplecil", IN1K): (82.31, 76.21, SEMA),
    ("cifar100-b0inc10", "sema", IN1K): (91.37, 86.98, SEMA),
    ("imagenet-r-b0inc20", "simplecil", IN1K): (67.09, 61.35, SEMA),
    ("imagenet-r-b0inc20", "sema", IN1K): (83.56, 78.00, SEMA),
    ("imagenet-a-b0inc20", "sema", IN1K): (64.53, 53.32, SEMA),
    ("vtab-b0inc10", "sema", IN1K): (91.26, 89.64, SEMA),
    ("cifar100-b0inc10", "ranpac", "ViT-B/16 IN21K + adapter"): (None, 92.2, RANPAC),
    ("imagenet-r-b0inc20", "ranpac", IN21K): (None, 77.9, RANPAC),
    ("imagenet-a-b0inc20", "ranpac", IN21K): (None, 62.4, RANPAC),
}


def spec_figures() -> dict[tuple[str, str, str], tuple[float | None, float, str]]:
    registry = Registry.discover()
    found = {}
    for name in registry.streams:
        for figure in registry.stream(name).published:
            key = (name, figure.strategy, figure.backbone)
            assert key not in found, f"{key} is published twice"
            found[key] = (figure.average, figure.last, figure.source)
    return found


def test_every_published_figure_in_a_spec_is_the_papers():
    figures = spec_figures()
    assert set(figures) == set(PAPERS)  # none invented, none dropped
    for key, (average, last, source) in figures.items():
        paper_average, paper_last, paper = PAPERS[key]
        assert source == paper, key
        assert last == pytest.approx(paper_last, abs=1e-9), key
        if paper_average is None:
            assert average is None, key
        else:
            assert average == pytest.approx(paper_average, abs=1e-9), key

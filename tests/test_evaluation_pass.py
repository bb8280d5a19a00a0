"""Evaluation runs each test batch through a strategy once (``predict_and_embed``) and
compatibility scoring reuses those embeddings: for every built-in strategy that shares
the forward pass, the pair equals ``predict`` and ``embed`` called apart, bit for bit."""

from __future__ import annotations

import pytest
import torch

from cl_bench.training.registry import Registry
from cl_bench.training.strategy import Runtime
from cl_bench.utils.config import build_config

QUICK = {  # one short training each: the numbers need not be good, only equal
    "sema": {"func_epochs": "1", "rd_epochs": "1"},
    "joint": {"epochs": "1"},
    "oca": {"epochs": "1", "warmup_epochs": "0"},
    "lambda-orth": {"epochs": "1", "warmup_epochs": "0", "transform_epochs": "1"},
    "aper": {"epochs": "1"},
    "fecam": {"epochs": "1"},
    "ease": {"epochs": "1"},
    "simplecil": {},  # the default: predict and embed, apart
}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_predict_and_embed_equals_predict_and_embed_apart(name, cached_backend, domains):
    spec = Registry.discover().strategy(name)
    config = build_config(spec.strategy.Config, QUICK[name])
    strategy = spec.strategy(backbone=cached_backend, stream=domains.info, config=config,
                             runtime=Runtime(device=torch.device("cpu"), seed=0))  # fmt: skip
    for experience in domains.experiences[:2]:
        strategy.train(experience)
    images = torch.cat([domains.experiences[0].images[:8], domains.experiences[1].images[:8]])
    predicted, embedded = strategy.predict_and_embed(images)
    assert torch.equal(predicted, strategy.predict(images))
    assert torch.equal(embedded, strategy.embed(images))
    assert predicted.shape == (16,) and embedded.shape[0] == 16

"""Evaluation runs each test batch through a strategy once (``predict_and_embed``) and
compatibility scoring reuses those embeddings. For every built-in strategy the pair
equals a reference computed from the strategy's learned parts alone: features from
``Backend.forward`` on a fresh, uncached backend with the strategy's adapters, then the
method's classifier written out here. None of the strategy's own prediction code, feature
cache or memoised computation is on the reference's path, so a prediction from the wrong
classes, adapters or head, or an embedding from the wrong space, fails here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mos_reference import naive_prediction

from cl_bench.evaluation.compatibility import common_width
from cl_bench.models.backend import Backend
from cl_bench.training.registry import Registry
from cl_bench.training.strategy import Runtime
from cl_bench.utils.config import build_config

# One short training each: the numbers need not be good, only right. Adapters train at
# scale 1 and a large learning rate, so that adapted features differ from the frozen ones
# by about a third (at the defaults, one epoch moves them by 0.05%): a prediction or an
# embedding that skips the adapters then shows.
FAST_ADAPTERS = {"epochs": "1", "lr": "0.1", "adapter_scale": "1.0"}
QUICK = {
    "sema": {"func_epochs": "1", "rd_epochs": "1"},
    "joint": {"epochs": "1"},
    "joint-adapters": {**FAST_ADAPTERS, "adapters": "true"},
    "oca": {"epochs": "1", "warmup_epochs": "0"},
    "lambda-orth": {"epochs": "1", "warmup_epochs": "0", "transform_epochs": "1"},
    "aper": FAST_ADAPTERS,
    "fecam": {**FAST_ADAPTERS, "adapt_first_session": "true"},
    "ease": FAST_ADAPTERS,
    "ranpac": {**FAST_ADAPTERS, "projection_dim": "256"},
    "mos": {**FAST_ADAPTERS, "alignment_epochs": "1"},
    "simplecil": {},
    "finetune-head": {"epochs": "2"},
}


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def adapted(fresh: Backend, images: torch.Tensor, adapters) -> torch.Tensor:
    return fresh.features(images) if adapters is None else fresh.forward(images, adapters)


def reference(name: str, s, images: torch.Tensor, fresh: Backend):
    """(class scores or labels, embedding) from the strategy's parts, per the method."""
    if name == "sema":
        embedded = fresh.forward(images, s.adapters_.eval())
        return s.head_(embedded)[:, : s.seen_], embedded
    if name.startswith("joint"):
        embedded = adapted(fresh, images, s.adapters_)
        return s.head_(embedded), embedded
    if name in ("oca", "lambda-orth"):
        embedded = s.heads_[-1](fresh.features(images))
        per_update = [cosine(*common_width(s.to_model_space(embedded, step), means))
                      for step, means in enumerate(s.class_means_)]  # fmt: skip
        return torch.cat(per_update, dim=1), embedded
    if name == "aper":
        embedded = torch.cat([fresh.features(images), fresh.forward(images, s.adapters_)], 1)
        return cosine(embedded, s.prototypes_), embedded
    if name == "fecam":  # Tukey, unit length, then Mahalanobis under each class's precision
        embedded = adapted(fresh, images, s.adapters_)
        x = F.normalize(embedded.double().pow(s.config.tukey_beta), dim=1)
        centred = x[:, None, :] - s.means_[None]
        distances = torch.einsum("ncd,cde,nce->nc", centred, s.precisions_, centred)
        return -distances, embedded
    if name == "ease":  # own subspace weight 1, the others alpha / (subspaces - 1)
        subspaces = [fresh.forward(images, adapters) for adapters in s.adapters_]
        others = s.config.alpha / (len(subspaces) - 1)
        scores = sum(
            torch.where(s.session_of_class_ == j, 1.0, others)
            * cosine(features, s.prototypes_[:, j])
            for j, features in enumerate(subspaces)
        )
        return scores, torch.cat(subspaces, dim=1)
    if name == "ranpac":
        embedded = adapted(fresh, images, s.adapters_)
        hidden = torch.relu(embedded @ s.projection_)
        return (hidden @ s.head_.weight.T)[:, : s.seen_], embedded
    if name == "mos":
        labels = [naive_prediction(s, image, fresh)[0] for image in images]
        return torch.tensor(labels), fresh.forward(images, s.stored_[0])
    if name == "simplecil":
        embedded = fresh.features(images)
        return cosine(embedded, s.prototypes_), embedded
    if name == "finetune-head":
        embedded = fresh.features(images)
        return s.head_(embedded), embedded
    raise AssertionError(f"no reference for {name}")


@pytest.mark.parametrize("name", sorted(QUICK))
@torch.no_grad()
def test_evaluation_pass_equals_the_methods_reference(name, cached_backend, lite0, domains):
    strategy_name = name.removesuffix("-adapters")
    spec = Registry.discover().strategy(strategy_name)
    config = build_config(spec.strategy.Config, QUICK[name])
    cached_backend.register(torch.cat([e.images for e in domains.experiences]))
    with torch.enable_grad():
        strategy = spec.strategy(backbone=cached_backend, stream=domains.info, config=config,
                                 runtime=Runtime(device=torch.device("cpu"), seed=0))  # fmt: skip
        for experience in domains.experiences[:2]:
            strategy.train(experience)
    # eight images of each: every class of both experiences, seen in training and not
    images = torch.cat(
        [
            domains.experiences[0].images[::15],
            domains.experiences[1].images[::15],
            domains.held_out["mnist"][::10],
            domains.held_out["fashion"][::10],
        ]
    )
    predicted, embedded = strategy.predict_and_embed(images)
    scores, expected_embedding = reference(strategy_name, strategy, images, Backend(lite0))
    torch.testing.assert_close(embedded.double(), expected_embedding.double(),
                               atol=1e-4, rtol=1e-4)  # fmt: skip
    assert torch.equal(predicted, strategy.predict(images))
    if scores.dim() == 1:  # labels already (MOS's retrieval)
        assert predicted.tolist() == scores.tolist()
        return
    assert scores.shape == (32, 10)  # the two experiences' classes, no more
    top2 = scores.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-4  # rows that float noise cannot flip
    assert clear.sum() >= 24
    assert predicted[clear].tolist() == scores.argmax(1)[clear].tolist()

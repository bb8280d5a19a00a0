"""SEMA's mechanics on the backend: shift detection, where and how often it expands,
frozen parts staying frozen, router weights."""

from __future__ import annotations

import torch
from clbench_sema.strategy import Sema, SemaConfig

from cl_bench.models.backend import Backend
from cl_bench.training.strategy import Runtime


def make_sema(lite0, domains, **overrides) -> Sema:
    config = SemaConfig(**{"func_epochs": 2, "rd_epochs": 10, **overrides})
    return Sema(backbone=Backend(lite0), stream=domains.info, config=config,
                runtime=Runtime(device=torch.device("cpu"), seed=0))  # fmt: skip


def test_a_new_domain_is_novel_and_the_same_domain_is_not(lite0, domains):
    experiences, held_out = domains.experiences, domains.held_out
    sema = make_sema(lite0, domains)
    sema.train(experiences[0])  # digits
    same = sema._first_novel_layer(sema._tail_input(held_out["mnist"]), set())
    shifted = sema._first_novel_layer(sema._tail_input(held_out["clipart"]), set())
    assert same is None
    assert shifted in {layer.block for layer in sema._layers()}


def test_expansion_only_in_expandable_blocks_and_once_per_layer_per_task(lite0, domains):
    experiences = domains.experiences
    sema = make_sema(lite0, domains, threshold=1e-6)  # everything is novel: expand wherever allowed
    for experience in experiences:
        sema.train(experience)
    report = sema.report()
    allowed = set(report["expandable_blocks"])
    assert len(allowed) == 3 and report["expandable_blocks"] == sema.backbone.view.names[-3:]
    for index in (1, 2):
        blocks = [e["block"] for e in report["expansions"] if e["experience"] == index]
        assert set(blocks) <= allowed and len(blocks) == len(set(blocks)) == 3
    assert report["adapters_per_layer_after_experience"] == [[1, 1, 1], [2, 2, 2], [3, 3, 3]]
    for block in range(sema.first_expandable_):  # never more than task 1's single adapter
        assert not hasattr(sema.adapters_.at(block), "adapters")


def tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of a module's tensors (its state dict's extra state, e.g. the descriptors'
    loss buffers, aside)."""
    return {k: v.clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}


def test_frozen_parts_stay_bit_identical_across_later_tasks(lite0, domains):
    experiences = domains.experiences
    sema = make_sema(lite0, domains, threshold=1e-6)
    sema.train(experiences[0])
    before = tensors(sema.adapters_)
    backbone = {k: v.clone() for k, v in sema.backbone.model.state_dict().items()}
    for experience in experiences[1:]:
        sema.train(experience)
    after = sema.adapters_.state_dict()
    assert len(after) > len(before)  # new adapters were added...
    for key, value in before.items():  # ...and nothing learned before moved
        assert torch.equal(after[key], value), key
    assert all(torch.equal(v, sema.backbone.model.state_dict()[k]) for k, v in backbone.items())


def test_no_expansion_trains_only_the_head(lite0, domains):
    experiences = domains.experiences
    sema = make_sema(lite0, domains, threshold=1e9)  # nothing is novel
    sema.train(experiences[0])
    before = tensors(sema.adapters_)
    head = sema.head_.weight.clone()
    sema.train(experiences[1])
    assert sema.report()["expansions"] == []
    assert all(torch.equal(v, sema.adapters_.state_dict()[k]) for k, v in before.items())
    assert not torch.equal(head, sema.head_.weight)


def test_router_weights_sum_to_one(lite0, domains):
    experiences, held_out = domains.experiences, domains.held_out
    sema = make_sema(lite0, domains, threshold=1e-6)
    for experience in experiences[:2]:
        sema.train(experience)
    x = sema._tail_input(held_out["fashion"])
    for layer in sema._layers():
        weights = layer.weights(x)
        assert weights.shape == (len(x), len(layer.adapters)) == (len(x), 2)
        torch.testing.assert_close(weights.sum(-1), torch.ones(len(x)))
        x = sema.backbone.view.run_block(layer.block, x, layer)
    predictions = sema.predict(held_out["fashion"])
    assert predictions.max() < 10  # only classes seen so far


def test_sema_runs_on_a_vit_with_the_same_code(domains):
    from cl_bench.models.backbones.base import BackboneOptions
    from cl_bench.models.backbones.hub import tiny_vit

    sema = make_sema(tiny_vit(BackboneOptions(image_size=64)), domains, threshold=1e-6)
    for experience in domains.experiences[:2]:
        sema.train(experience)
    report = sema.report()
    assert report["expandable_blocks"] == sema.backbone.view.names[-3:]
    assert report["adapters_per_layer_after_experience"] == [[1, 1, 1], [2, 2, 2]]
    images = domains.held_out["fashion"]
    assert sema.predict(images).max() < 10
    assert sema.embed(images).shape == (len(images), sema.backbone.num_features)

"""MOS's mechanics on the backend: stored sets never change, merging follows its formula,
retrieval agrees with a naive per-sample loop and stops in time."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from clbench_mos.retrieval import refine
from clbench_mos.strategy import Mos, MosConfig
from mos_reference import naive_prediction

from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.models.backbones.hub import tiny_vit
from cl_bench.models.backend import Backend
from cl_bench.training.strategy import Runtime


def make_mos(backbone, domains, **overrides) -> Mos:
    config = MosConfig(**{"epochs": 2, "alignment_epochs": 2, **overrides})
    return Mos(backbone=Backend(backbone), stream=domains.info, config=config,
               runtime=Runtime(device=torch.device("cpu"), seed=0))  # fmt: skip


@pytest.fixture(scope="module")
def trained(lite0, domains):
    mos = make_mos(lite0, domains)
    for experience in domains.experiences:
        mos.train(experience)
    return mos


def mixed_images(domains, per_domain: int = 10) -> torch.Tensor:
    return torch.cat([images[:per_domain] for images in domains.held_out.values()])


def states(mos: Mos) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in s.state_dict().items()} for s in mos.stored_]


def test_stored_sets_are_bit_identical_after_evaluation_and_later_training(lite0, domains):
    mos = make_mos(lite0, domains)
    mos.train(domains.experiences[0])
    mos.train(domains.experiences[1])
    before = states(mos)
    images = mixed_images(domains)
    mos.predict(images), mos.embed(images), mos._retrieve_batched(images)
    mos.train(domains.experiences[2])
    mos.predict(images)
    after = states(mos)
    assert len(after) == 3
    for old, new in zip(before, after[:2], strict=False):
        assert all(torch.equal(new[key], value) for key, value in old.items())
    assert not all(torch.equal(after[2][k], v) for k, v in before[1].items())  # it learned


def test_merging_moves_the_current_set_exactly_as_the_formula(lite0, domains):
    """lr 0 isolates the merge: after S steps, theta = mean + (1 - m)^S (theta_0 - mean).

    (Values small enough that the loss, and so 0 x gradient, stays finite.)"""
    mos = make_mos(lite0, domains, lr=0.0, epochs=1, batch_size=48, merge_momentum=0.1)
    mos.train(domains.experiences[0])
    mos.stored_.append(mos.current_.copy())
    for value, stored in zip([0.0, 0.002], mos.stored_, strict=True):
        for parameter in stored.parameters():
            parameter.data.fill_(value)
    for parameter in mos.current_.parameters():
        parameter.data.fill_(0.01)
    experience = domains.experiences[1]  # 120 images: 3 steps of 48
    start = mos.backbone.block_input(experience.images, 0)
    mos._train_adapters(lambda index: start[index], experience.labels, known=5, seen=10, task=2)
    expected = 0.001 + 0.9**3 * (0.01 - 0.001)
    for parameter in mos.current_.parameters():
        torch.testing.assert_close(parameter, torch.full_like(parameter, expected))
    assert all(torch.all(p == 0.002) for p in mos.stored_[1].parameters())


@torch.no_grad()
def test_both_retrieval_paths_equal_a_naive_per_sample_loop(trained, domains):
    images = mixed_images(domains, per_domain=12)
    naive = [naive_prediction(trained, image) for image in images]
    for path in (trained._retrieve_batched, trained._retrieve_per_round):  # either device's
        retrieval, first = path(images)
        assert retrieval.scores.argmax(1).tolist() == [label for label, _ in naive]
        assert retrieval.rounds.tolist() == [rounds for _, rounds in naive]
        assert int(retrieval.rounds.max()) <= 4
        assert torch.allclose(first, trained.embed(images), atol=1e-5)
    before = Counter(trained.rounds_)
    predicted, embedded = trained.predict_and_embed(images)  # the evaluation pass
    assert predicted.tolist() == [label for label, _ in naive]
    torch.testing.assert_close(embedded, Backend(trained.backbone.backbone).forward(
        images, trained.stored_[0]), atol=1e-4, rtol=1e-4)  # fmt: skip
    assert trained.rounds_ - before == Counter(rounds for _, rounds in naive)
    share = trained.report()["retrieval_rounds_share"]
    assert share == {str(k): n / sum(trained.rounds_.values())
                     for k, n in sorted(trained.rounds_.items())}  # fmt: skip


def test_retrieval_stops_after_max_rounds_in_a_cycle():
    """Task 0's adapter says class 1 (task 1), task 1's says class 0 (task 0): a cycle."""
    task_of_class = torch.tensor([0, 1])
    head = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))

    def one_hot_task(tasks: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return F.one_hot(tasks, 2).float()

    prototype_logits = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    result = refine(head, one_hot_task, prototype_logits, task_of_class, num_tasks=2)
    assert result.rounds.tolist() == [4, 4]  # tasks 0, 1, 0, 1: stopped by the limit
    assert result.task.tolist() == [1, 1]  # the fourth round used task 1's adapter
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))  # now each adapter confirms its own task
    stable = refine(head, one_hot_task, prototype_logits, task_of_class, num_tasks=2)
    assert stable.rounds.tolist() == [1, 1] and stable.task.tolist() == [0, 0]


def test_mos_runs_on_a_vit_with_the_same_code(domains):
    mos = make_mos(tiny_vit(BackboneOptions(image_size=64)), domains, epochs=1)
    for experience in domains.experiences[:2]:
        mos.train(experience)
    predictions = mos.predict(mixed_images(domains))
    assert predictions.shape == (30,) and int(predictions.max()) < 10
    assert mos.embed(mixed_images(domains)).shape == (30, mos.backbone.num_features)
    assert mos.report()["stored_adapter_sets"] == 2

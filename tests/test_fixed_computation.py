"""Reuse of computation that a strategy froze for good (``Backend.fixed``): each image is
computed once, the answers equal fresh computation, and every strategy that reuses it
makes the same predictions as when everything is recomputed."""

from __future__ import annotations

import pytest
import torch

from cl_bench.evaluation.protocol import seed_everything
from cl_bench.training.registry import Registry
from cl_bench.training.strategy import Runtime
from cl_bench.utils.config import build_config


class Counting:
    """A deterministic computation on uint8 images that counts the images it sees."""

    def __init__(self) -> None:
        self.images = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.images += len(images)
        flat = images.reshape(len(images), -1).float()
        return torch.stack([flat.mean(1), flat.std(1)], dim=1)


@pytest.fixture
def registered(cached_backend, domains):
    images = torch.cat([experience.images for experience in domains.experiences])
    cached_backend.register(images)
    yield cached_backend, images
    cached_backend.reuse_fixed = True


def test_each_registered_image_is_computed_once_in_any_order(registered):
    backend, images = registered
    compute = Counting()
    fixed = backend.fixed(compute)
    first = fixed(images[:40])
    shuffled = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    again = fixed(images[shuffled])  # 40 seen (in another order), 20 new
    assert backend.batch_size == 32  # so rows 0-63 are the first two chunks, each run once
    assert compute.images == 64
    assert torch.equal(first, compute(images[:40]))
    assert torch.equal(again, compute(images[shuffled]))


class BatchDependent(Counting):
    """A computation whose result for an image depends on the batch it is in, as the
    last bits of a real network's can."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = super().__call__(images)
        return out + out.mean(0, keepdim=True)


def test_an_images_value_does_not_depend_on_what_else_was_asked(registered):
    """A resumed run's memory starts empty: it asks in other batches than the run it
    resumes, and must get the same values."""
    backend, images = registered
    asked_together = backend.fixed(BatchDependent())(images[:40])
    one_at_a_time = backend.fixed(BatchDependent())
    for row in (37, 5, 20):
        assert torch.equal(one_at_a_time(images[row : row + 1])[0], asked_together[row])


def test_unregistered_images_are_computed_every_time_and_never_stored(registered):
    backend, images = registered
    compute = Counting()
    fixed = backend.fixed(compute)
    outside = 255 - images[:5]  # not in the registered data
    mixed = torch.cat([images[:3], outside])
    assert torch.equal(fixed(mixed), compute(mixed))
    assert torch.equal(fixed(mixed), compute(mixed))
    assert fixed.computed == 32 + 5 + 5  # the registered rows' chunk once, the others each call


def test_registering_other_data_forgets_what_was_kept(registered):
    backend, images = registered
    compute = Counting()
    fixed = backend.fixed(compute)
    fixed(images[:10])  # the first chunk: 32 rows
    backend.register(images[:20])  # another stream
    fixed(images[:10])  # its first chunk: its 20 rows
    assert fixed.computed == 52
    backend.register(images)


def test_switched_off_it_computes_every_call(registered):
    backend, images = registered
    backend.reuse_fixed = False
    fixed = backend.fixed(Counting())
    fixed(images[:10])
    fixed(images[:10])
    assert fixed.computed == 20


QUICK = {  # short schedules: the numbers need not be good, only equal
    "sema": {"func_epochs": "1", "rd_epochs": "1"},
    "mos": {"epochs": "1", "alignment_epochs": "1"},
    "ease": {"epochs": "1"},
    "aper": {"epochs": "1"},
    "fecam": {"epochs": "1", "adapt_first_session": "true"},
}


def stages(name: str, backend, domains) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Predictions and embeddings of every test image after each experience, as the
    protocol's accuracy matrix and compatibility scores see them."""
    spec = Registry.discover().strategy(name)
    seed_everything(0)
    strategy = spec.strategy(backbone=backend, stream=domains.info,
                             config=build_config(spec.strategy.Config, QUICK[name]),
                             runtime=Runtime(device=torch.device("cpu"), seed=0))  # fmt: skip
    tests = torch.cat([experience.images[::4] for experience in domains.experiences])
    out = []
    for experience in domains.experiences:
        strategy.train(experience)
        out.append(strategy.predict_and_embed(tests))
    return out


@pytest.mark.parametrize("name", sorted(QUICK))
def test_reuse_keeps_every_prediction_and_does_less_work(name, registered, domains):
    backend, _ = registered
    work, outcomes = {}, {}
    for reuse in (False, True):
        backend.reuse_fixed = reuse
        backend.stats.reset()
        outcomes[reuse] = stages(name, backend, domains)
        work[reuse] = backend.stats.block_evaluations
    for (fresh_labels, fresh_embeddings), (labels, embeddings) in zip(
        outcomes[False], outcomes[True], strict=True
    ):
        assert torch.equal(labels, fresh_labels)
        torch.testing.assert_close(embeddings, fresh_embeddings, rtol=1e-4, atol=1e-5)
    assert work[True] < work[False]

"""Classifier alignment, shared by MOS and SEMA: the class Gaussians reproduce their
statistics, and aligning a head biased toward one class undoes the bias."""

from __future__ import annotations

import torch
from torch import nn

from cl_bench import ClassGaussians, align_classifier


def test_class_gaussians_reproduce_the_stored_statistics():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(30, 4, generator=generator) @ torch.randn(4, 4, generator=generator)
    gaussians = ClassGaussians(eps=1e-4)
    gaussians.add(features + 3.0)
    gaussians.add(features[:3])  # fewer samples than dimensions: singular without eps
    torch.testing.assert_close(gaussians.means[0], features.mean(0) + 3.0)
    torch.testing.assert_close(
        gaussians.covariances[0], torch.cov(features.T) + 1e-4 * torch.eye(4)
    )
    draws, labels = gaussians.sample(100_000, torch.Generator().manual_seed(1))
    assert torch.bincount(labels).tolist() == [100_000, 100_000]
    for label in (0, 1):
        sample = draws[labels == label]
        torch.testing.assert_close(sample.mean(0), gaussians.means[label], atol=0.05, rtol=0)
        torch.testing.assert_close(
            torch.cov(sample.T), gaussians.covariances[label], atol=0.05, rtol=0.03
        )
    again, _ = gaussians.sample(100_000, torch.Generator().manual_seed(1))
    assert torch.equal(draws, again)


def test_variance_only_gaussians_keep_the_diagonal_and_draw_independent_coordinates():
    """MOS's "variance" storage: diag(cov) + eps per class, coordinates drawn apart."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(50, 3, generator=generator) @ torch.tensor(
        [[1.0, 0.8, 0.0], [0.0, 0.6, 0.0], [0.0, 0.0, 2.0]]
    )  # correlated first two coordinates
    gaussians = ClassGaussians(eps=1e-4, diagonal=True)
    gaussians.add(features)
    torch.testing.assert_close(gaussians.covariances[0], torch.cov(features.T).diag() + 1e-4)
    draws, _ = gaussians.sample(100_000, torch.Generator().manual_seed(1))
    expected = torch.diag(gaussians.covariances[0])
    torch.testing.assert_close(torch.cov(draws.T), expected, atol=0.03, rtol=0.03)
    torch.testing.assert_close(draws.mean(0), features.mean(0), atol=0.03, rtol=0)


def test_alignment_removes_a_head_bias_and_touches_only_the_head():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
    gaussians = ClassGaussians(eps=1e-4)
    for centre in centres:
        gaussians.add(centre + 0.3 * torch.randn(40, 3, generator=generator))
    head = nn.Linear(3, 5)  # wider than the seen classes, as a head sized for the stream
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, 0.0, 10.0, 0.0, 0.0]))  # everything is class 2
    head.requires_grad_(False)
    assert head(centres)[:, :3].argmax(1).tolist() == [2, 2, 2]
    align_classifier(head, gaussians, epochs=20, lr=0.05, momentum=0.9, weight_decay=0.0,
                     samples_per_class=64, batch_size=64, generator=generator)  # fmt: skip
    assert head(centres)[:, :3].argmax(1).tolist() == [0, 1, 2]
    assert not any(p.requires_grad for p in head.parameters())  # frozen as it was

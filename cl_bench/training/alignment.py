"""Classifier alignment from class Gaussians (SLCA, Zhang et al., ICCV 2023): what a
strategy keeps of old classes instead of exemplars, and how it re-balances its head.

After each experience, a strategy stores the mean and covariance of every new class's
features (:class:`ClassGaussians`); :func:`align_classifier` then retrains a linear head
on features drawn from every seen class's Gaussian, so that the head stops favouring
the newest classes. MOS does this by default; SEMA with ``classifier_alignment=true``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ClassGaussians:
    """Mean and covariance (+ ``eps`` I) per class, and seeded sampling from them.

    A class with n images has a sample covariance of rank at most n - 1, far below the
    feature width on small streams (n ~ 60, width 1280). Sampling uses that exactly:
    ``cov = V diag(s^2 / (n-1)) V^T + eps I`` from the thin SVD of the centred
    features, so a draw is ``mean + V (s / sqrt(n-1) * a) + sqrt(eps) b`` with a, b
    standard normal: the same distribution as a Cholesky draw, at O(n d) per sample
    instead of O(d^2). Only the statistics (mean, covariance and this factorisation of
    it) are kept, never the features.

    ``diagonal=True`` keeps only the variances (+ ``eps``), as MOS's "variance" storage
    does: D numbers a class instead of D^2, draws with independent coordinates.
    """

    def __init__(self, eps: float = 1e-4, diagonal: bool = False):
        self.eps = eps
        self.diagonal = diagonal
        self.means: list[torch.Tensor] = []
        self.covariances: list[torch.Tensor] = []  # diagonal: the variances (+ eps), D
        self._factors: list[torch.Tensor] = []  # rank x d: scaled principal directions

    def __len__(self) -> int:
        return len(self.means)

    def state_dict(self) -> dict[str, list[torch.Tensor]]:
        """The statistics (their settings are the strategy's config)."""
        return {"means": self.means, "covariances": self.covariances, "factors": self._factors}

    def load_state_dict(self, state: dict[str, list[torch.Tensor]]) -> None:
        self.means, self.covariances = list(state["means"]), list(state["covariances"])
        self._factors = list(state["factors"])

    def add(self, features: torch.Tensor) -> None:
        """Store the statistics of one class from its features (N x D, N >= 2)."""
        features = features.detach().double()
        mean = features.mean(0)
        centred = features - mean
        if self.diagonal:
            self.means.append(mean.float())
            self.covariances.append((centred.square().sum(0) / (len(features) - 1)
                                     + self.eps).float())  # fmt: skip
            return
        _, singular, directions = torch.linalg.svd(centred, full_matrices=False)
        factor = (singular / (len(features) - 1) ** 0.5)[:, None] * directions
        eye = torch.eye(features.shape[1], dtype=features.dtype, device=features.device)
        self.means.append(mean.float())
        self.covariances.append((factor.T @ factor + self.eps * eye).float())
        self._factors.append(factor.float())

    def sample(
        self, per_class: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``per_class`` draws from every stored class: (features, labels)."""
        draws, labels = [], []
        if self.diagonal:
            for label, (mean, variance) in enumerate(zip(self.means, self.covariances,
                                                         strict=True)):  # fmt: skip
                noise = torch.randn(per_class, len(mean), generator=generator).to(mean.device)
                draws.append(mean + variance.sqrt() * noise)
                labels.append(torch.full((per_class,), label, dtype=torch.int64))
            return torch.cat(draws), torch.cat(labels).to(draws[0].device)
        for label, (mean, factor) in enumerate(zip(self.means, self._factors, strict=True)):
            low_rank = torch.randn(per_class, len(factor), generator=generator)
            isotropic = torch.randn(per_class, len(mean), generator=generator)
            draw = low_rank.to(mean.device) @ factor + self.eps**0.5 * isotropic.to(mean.device)
            draws.append(mean + draw)
            labels.append(torch.full((per_class,), label, dtype=torch.int64))
        return torch.cat(draws), torch.cat(labels).to(draws[0].device)


def align_classifier(
    head: nn.Module,
    gaussians: ClassGaussians,
    *,
    epochs: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    samples_per_class: int,
    batch_size: int,
    generator: torch.Generator,
    log: Callable[[torch.Tensor], None] | None = None,
) -> None:
    """Retrain ``head`` (its first ``len(gaussians)`` outputs) with cross-entropy on
    ``samples_per_class`` fresh draws per class each epoch, SGD with a cosine schedule;
    ``log`` hears each step's loss (``partial(runtime.log, NAME)``).

    Only the head's parameters change; their ``requires_grad`` is restored afterwards.
    """
    seen = len(gaussians)
    parameters = list(head.parameters())
    trainable = [p.requires_grad for p in parameters]
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimiser = torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(epochs, 1))
    for _ in range(epochs):
        features, labels = gaussians.sample(samples_per_class, generator)
        order = torch.randperm(len(labels), generator=generator)
        for index in order.to(labels.device).split(batch_size):
            loss = F.cross_entropy(head(features[index])[:, :seen], labels[index])
            if log is not None:
                log(loss.detach())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        schedule.step()
    for parameter, flag in zip(parameters, trainable, strict=True):
        parameter.requires_grad_(flag)

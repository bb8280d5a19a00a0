"""Per-class Gaussians of features: what MOS keeps of old classes instead of exemplars."""

from __future__ import annotations

import torch


class ClassGaussians:
    """Mean and covariance (+ ``eps`` I) per class, and seeded sampling from them.

    The Cholesky factor is computed once per class, in float64, so that the
    near-singular covariances of small classes (fewer images than dimensions) still
    factorise; samples are ``mean + L z``.
    """

    def __init__(self, eps: float = 1e-4):
        self.eps = eps
        self.means: list[torch.Tensor] = []
        self.covariances: list[torch.Tensor] = []
        self._factors: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.means)

    def add(self, features: torch.Tensor) -> None:
        """Store the statistics of one class from its features (N x D, N >= 2)."""
        features = features.detach().double()
        covariance = torch.cov(features.T) + self.eps * torch.eye(
            features.shape[1], dtype=features.dtype, device=features.device
        )
        self.means.append(features.mean(0).float())
        self.covariances.append(covariance.float())
        self._factors.append(torch.linalg.cholesky(covariance).float())

    def sample(
        self, per_class: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``per_class`` draws from every stored class: (features, labels)."""
        draws, labels = [], []
        for label, (mean, factor) in enumerate(zip(self.means, self._factors, strict=True)):
            noise = torch.randn(per_class, len(mean), generator=generator).to(mean.device)
            draws.append(mean + noise @ factor.T)
            labels.append(torch.full((per_class,), label, dtype=torch.int64))
        return torch.cat(draws), torch.cat(labels).to(draws[0].device)

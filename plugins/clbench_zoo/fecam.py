"""FeCAM (Goswami et al., NeurIPS 2023): a Mahalanobis classifier with one covariance per
class, on the frozen pretrained model (the paper's setting for ViTs).

The classifier as the authors' code computes it: Tukey's power transform ``x^beta``
(``beta = 0.5``, from their CNN code; ``beta = 0`` is the log; ``1`` switches it off),
then L2 normalisation; per class the mean and the unbiased covariance of those
features; shrinkage ``S + g1 * mean(diag S) * I + g2 * mean(off-diagonal S) * (1 1^T -
I)`` with the ViT scripts' ``g1 = 1, g2 = 0``; normalisation to the correlation matrix
``S_ij / (sd_i sd_j)``; distance ``(x - mu_c)^T pinv(C_c) (x - mu_c)``; the nearest
class wins. The inverses are computed once per class, when the class arrives (the
official code recomputes them at every evaluation).

``--set adapt_first_session=true`` first adapts the backbone on the first session, as
LAMDA-PILOT's FeCAM does (its settings are APER's). PILOT's classifier itself departs
from the method, and is not followed: its ``torch.corrcoef`` of the covariance matrix
correlates the matrix's rows instead of normalising it, its shrinkage is a fixed
``+100 I``, its covariances come from unnormalised features while distances use
normalised ones, and it has no Tukey transform. The authors' CNN code shrinks twice
(once when a covariance is stored, once before use); here the shrinkage is applied once,
as the paper states it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cl_bench import Experience, FixedComputation, Strategy, require
from clbench_zoo.adaptation import PILOT_AUGMENTATION, AdaptationConfig, train_adapters


@dataclass(frozen=True)
class FecamConfig(AdaptationConfig):
    adapt_first_session: bool = False
    tukey_beta: float = 0.5
    shrink_diagonal: float = 1.0  # g1
    shrink_off_diagonal: float = 0.0  # g2

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.tukey_beta >= 0, "tukey_beta", "must be non-negative (0: log)")
        require(self.shrink_diagonal >= 0, "shrink_diagonal", "must be non-negative")
        require(self.shrink_off_diagonal >= 0, "shrink_off_diagonal", "must be non-negative")


def tukey(features: torch.Tensor, beta: float) -> torch.Tensor:
    """``x^beta`` (``log x`` for beta 0): makes skewed non-negative features more Gaussian."""
    if beta == 1:
        return features
    if (features < 0).any():
        raise ValueError(
            "FeCAM's Tukey transform needs non-negative features, and this backbone gives "
            "negative ones (a ViT's CLS token, say); use --set tukey_beta=1 to switch it "
            "off, as the authors' ViT scripts do"
        )
    return torch.log(features) if beta == 0 else features.pow(beta)


def transform(features: torch.Tensor, beta: float) -> torch.Tensor:
    return F.normalize(tukey(features.double(), beta), dim=1)


def shrink(covariance: torch.Tensor, diagonal: float, off_diagonal: float) -> torch.Tensor:
    """FeCAM's covariance shrinkage with its two constants (g1, g2)."""
    eye = torch.eye(len(covariance), dtype=covariance.dtype, device=covariance.device)
    off = covariance * (1 - eye)
    nonzero = off != 0
    off_mean = off[nonzero].mean() if nonzero.any() else covariance.new_zeros(())
    return (
        covariance
        + diagonal * covariance.diagonal().mean() * eye
        + (off_diagonal * off_mean * (1 - eye))
    )


def correlation(covariance: torch.Tensor) -> torch.Tensor:
    deviation = covariance.diagonal().sqrt()
    return covariance / (deviation[:, None] * deviation[None, :])


def precision(matrix: torch.Tensor) -> torch.Tensor:
    """The inverse of a correlation matrix: through its Cholesky factor when it is
    positive definite (always, once shrunk with g1 > 0), else the pseudo-inverse of the
    official code (equal to the inverse wherever that exists)."""
    factor, info = torch.linalg.cholesky_ex(matrix)
    if info.item() == 0:
        return torch.cholesky_inverse(factor)
    return torch.linalg.pinv(matrix, hermitian=True)


def mahalanobis(
    features: torch.Tensor, means: torch.Tensor, precisions: torch.Tensor
) -> torch.Tensor:
    """N x C squared distances ``(x - mu_c)^T P_c (x - mu_c)``."""
    columns = []
    for mean, precision in zip(means, precisions, strict=True):
        centred = features - mean
        columns.append(((centred @ precision) * centred).sum(1))
    return torch.stack(columns, dim=1)


class Fecam(Strategy):
    Config = FecamConfig
    augmentation = PILOT_AUGMENTATION

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.adapters_ = None
        self._features = self._feature_computation()
        width, device = self.backbone.num_features, self.backbone.device
        self.means_ = torch.empty(0, width, dtype=torch.float64, device=device)
        self.precisions_ = torch.empty(0, width, width, dtype=torch.float64, device=device)

    def train(self, experience: Experience) -> None:
        config = self.config
        if experience.index == 0 and config.adapt_first_session:
            self.adapters_ = train_adapters(
                self.backbone, experience.images, experience.labels, len(experience.classes),
                config, self.runtime, "FeCAM first session", self.train_transform,
            )  # fmt: skip
            self._features = self._feature_computation()
        features = transform(self._features(experience.images), config.tukey_beta)
        labels = experience.labels.to(features.device)
        means, precisions = [], []
        for label in experience.classes:
            own = features[labels == label]
            covariance = shrink(torch.cov(own.T), config.shrink_diagonal,
                                config.shrink_off_diagonal)  # fmt: skip
            means.append(own.mean(0))
            precisions.append(precision(correlation(covariance)))
        self.means_ = torch.cat([self.means_, torch.stack(means)])
        self.precisions_ = torch.cat([self.precisions_, torch.stack(precisions)])

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.distances(images).argmin(1)

    @torch.no_grad()
    def predict_and_embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.embed(images)
        return self._distances_of(embedded).argmin(1), embedded

    @torch.no_grad()
    def distances(self, images: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance of each image to each seen class (N x C)."""
        return self._distances_of(self.embed(images))

    def _distances_of(self, embedded: torch.Tensor) -> torch.Tensor:
        features = transform(embedded, self.config.tukey_beta)
        return mahalanobis(features.to(self.means_.device), self.means_, self.precisions_)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self._features(images)

    def report(self) -> dict[str, Any]:
        return {"first_session_adapted": self.adapters_ is not None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._features = self._feature_computation()

    def _feature_computation(self) -> FixedComputation:
        """The features the classifier reads, frozen for good after the first session."""
        return self.backbone.fixed_under(self.adapters_)

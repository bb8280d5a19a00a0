"""Losses of the compatible heads: the lambda-orthogonality regulariser and SupCon."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def orthogonality_gap(weight: torch.Tensor) -> torch.Tensor:
    """||W W^T - I||_F: zero exactly when the rows of W are orthonormal."""
    eye = torch.eye(weight.shape[0], device=weight.device, dtype=weight.dtype)
    return torch.linalg.matrix_norm(weight @ weight.T - eye)


def lambda_regulariser(weight: torch.Tensor, lam: float, alpha: float) -> torch.Tensor:
    """sigmoid(alpha (gap - lambda)) * gap: gaps well below lambda are barely penalised,
    so W may leave strict orthogonality by about lambda (lambda = 0: soft orthogonality)."""
    gap = orthogonality_gap(weight)
    return torch.sigmoid(alpha * (gap - lam)) * gap


def supcon(anchors: torch.Tensor, others: torch.Tensor, labels: torch.Tensor,
           temperature: float) -> torch.Tensor:  # fmt: skip
    """Supervised contrastive loss (Khosla et al., 2020) over the two views
    ``anchors`` and ``others`` of the same samples: positives share a label."""
    features = F.normalize(torch.cat([anchors, others]), dim=1)
    targets = torch.cat([labels, labels])
    logits = features @ features.T / temperature
    self_mask = torch.eye(len(features), dtype=torch.bool, device=features.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = (targets[:, None] == targets[None, :]) & ~self_mask
    log_probability = logits.log_softmax(dim=1).masked_fill(self_mask, 0.0)
    per_anchor = (log_probability * positives).sum(1) / positives.sum(1).clamp(min=1)
    return -per_anchor.mean()

"""lambda-orthogonality (Ricci et al., 2025) for class-incremental updates on a frozen
backbone.

Each update trains a new representation head independently (cross-entropy, as the
baseline) and freezes it; then, on the update's training data, it learns a backward
transform B (new space -> previous space) and a forward transform F (previous -> new),
both affine, with w1 ||F(h_old) - B(h_new)||^2 + w2 ||B(h_new) - h_old||^2 +
w3 [SupCon(F(h_old), B(h_new)) + SupCon(F(h_old), h_old)] + L_lambda(W_B), where
L_lambda = sigmoid(alpha (||W W^T - I||_F - lambda)) ||W W^T - I||_F, or with B
strictly orthogonal (B = exp(P), P skew-symmetric; ``orthogonal=true``). Adam, lr 1e-3.

Queries of model t reach a gallery of model k through the chain B_t, ..., B_{k+1}.
The paper's text leaves alpha, w1-w3, the SupCon temperature and the number of
epochs open (its code was not available offline); the defaults here (alpha 1, w 1,
temperature 0.1, 100 epochs) are this suite's choices and are overridable, and so is
the start of B: the orthogonal Procrustes fit of the old features from the new ones,
F the identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrizations

from cl_bench import Experience, require, saved_length
from clbench_compatible.base import CompatibleHeads, HeadConfig, RepresentationHead
from clbench_compatible.losses import lambda_regulariser, orthogonality_gap, supcon
from clbench_compatible.training import fit


@dataclass(frozen=True)
class LambdaOrthConfig(HeadConfig):
    lam: float = 12.0  # lambda: "the best trade-off" in the paper; 0 = soft orthogonality
    alpha: float = 1.0
    orthogonal: bool = False  # strictly orthogonal B = exp(P)
    forward_weight: float = 1.0
    backward_weight: float = 1.0
    contrastive_weight: float = 1.0
    temperature: float = 0.1
    transform_epochs: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lam >= 0, "lam", "must be non-negative")
        require(self.alpha > 0, "alpha", "must be positive")
        require(self.temperature > 0, "temperature", "must be positive")
        require(self.transform_epochs >= 1, "transform_epochs", "must be at least 1")
        for key in ("forward_weight", "backward_weight", "contrastive_weight"):
            require(getattr(self, key) >= 0, key, "must be non-negative")


def backward_transform(source: torch.Tensor, target: torch.Tensor, orthogonal: bool) -> nn.Module:
    """B: source space -> target space, started at the orthogonal Procrustes fit.

    The best rotation of ``source`` onto ``target``: L_lambda is zero there, and
    training moves B away from orthogonality only as far as the other terms pay for.
    (An unconstrained least-squares start is ill-conditioned on a few hundred
    normalised features: ||W W^T - I|| in the thousands.) The paper leaves the start
    open; from the identity, Adam at 1e-3 does not get far in 100 epochs.
    """
    width = source.shape[1]
    u, _, v = torch.linalg.svd(source.T @ target)
    rotation = (u @ v).T  # x -> x @ rotation.T = x @ u @ v
    if orthogonal:
        layer = parametrizations.orthogonal(nn.Linear(width, width, bias=False),
                                            orthogonal_map="matrix_exp")  # fmt: skip
        with torch.no_grad():
            layer.weight = rotation
        return layer
    layer = nn.Linear(width, width)
    with torch.no_grad():
        layer.weight.copy_(rotation)
        layer.bias.zero_()
    return layer


def identity_affine(width: int) -> nn.Linear:
    layer = nn.Linear(width, width)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(width))
        layer.bias.zero_()
    return layer


class LambdaOrth(CompatibleHeads):
    Config = LambdaOrthConfig

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.backward_ = nn.ModuleList()  # backward_[t - 1] maps space t into space t - 1

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """A strictly orthogonal B is a parametrised module, built again before loading."""
        if self.config.orthogonal:
            width, count = self.config.width, saved_length(state["backward_"])
            self.backward_ = nn.ModuleList(
                parametrizations.orthogonal(nn.Linear(width, width, bias=False),
                                            orthogonal_map="matrix_exp").to(self.backbone.device)
                for _ in range(count)
            )  # fmt: skip
        super().load_state_dict(state)

    def to_model_space(self, features: torch.Tensor, step: int) -> torch.Tensor:
        for transform in reversed(self.backward_[step:]):
            features = transform(features)
        return features

    def report(self) -> dict[str, Any]:
        gaps = [float(orthogonality_gap(b.weight)) for b in self.backward_]
        return {**super().report(), "backward_orthogonality_gap": gaps}

    def _learn(self, head: RepresentationHead, features: torch.Tensor, labels: torch.Tensor,
               num_classes: int, experience: Experience) -> None:  # fmt: skip
        super()._learn(head, features, labels, num_classes, experience)
        if len(self.heads_):
            head.requires_grad_(False).eval()
            self.backward_.append(self._transforms(self.heads_[-1], head, features, labels))

    def _transforms(self, old: RepresentationHead, new: RepresentationHead,
                    features: torch.Tensor, labels: torch.Tensor) -> nn.Module:  # fmt: skip
        config, width = self.config, self.config.width
        with torch.no_grad():
            h_old, h_new = old(features), new(features)
        backward = backward_transform(h_new, h_old, config.orthogonal).to(features.device)
        forward = identity_affine(width).to(features.device)  # F(h_old) ~ B(h_new) ~ h_old

        def loss(index: torch.Tensor) -> torch.Tensor:
            b, f, target = backward(h_new[index]), forward(h_old[index]), labels[index]
            total = config.forward_weight * (f - b).pow(2).sum(1).mean()
            total = total + config.backward_weight * (b - h_old[index]).pow(2).sum(1).mean()
            total = total + config.contrastive_weight * (
                supcon(f, b, target, config.temperature)
                + supcon(f, h_old[index], target, config.temperature)
            )
            if not config.orthogonal:
                total = total + lambda_regulariser(backward.weight, config.lam, config.alpha)
            return total

        fit([*backward.parameters(), *forward.parameters()], loss, len(labels),
            epochs=config.transform_epochs, lr=config.lr, weight_decay=0.0,
            batch_size=config.batch_size, warmup_epochs=0, runtime=self.runtime,
            description="lambda-orth transforms")  # fmt: skip
        backward.requires_grad_(False)
        return backward

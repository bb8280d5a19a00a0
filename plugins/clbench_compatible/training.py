"""The optimisation shared by the compatible heads: Adam, linear warm-up, cosine decay."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from cl_bench import Runtime


def fit(
    parameters: Iterable[nn.Parameter],
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    size: int,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    warmup_epochs: int,
    runtime: Runtime,
    description: str,
) -> None:
    """Minimise ``batch_loss(indices)`` over shuffled mini-batches of ``range(size)``.

    The learning rate rises linearly for ``warmup_epochs`` and then follows a cosine to
    zero, stepped per epoch (as OCA's code does).
    """
    optimiser = torch.optim.Adam(list(parameters), lr=lr, weight_decay=weight_decay)

    def factor(epoch: int) -> float:
        if epoch < warmup_epochs:
            return (epoch + 1) / warmup_epochs
        progress = (epoch - warmup_epochs) / max(epochs - warmup_epochs, 1)
        return 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
    for _ in runtime.track(range(epochs), total=epochs, description=description):
        for index in torch.randperm(size, generator=runtime.generator).split(batch_size):
            loss = batch_loss(index)
            runtime.log("head/loss", loss.detach())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        schedule.step()

"""MOS's training-free self-refined adapter retrieval, on features already computed.

Start from the task that the prototype classifier predicts; classify with that task's
adapter and the linear head; if the head points to another task, switch to its adapter
and classify again; stop when the task no longer changes or after ``max_rounds`` head
evaluations. Each sample refines on its own; the final logits are the last round's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Retrieval:
    scores: torch.Tensor  # N x C: softmax(final head logits) + softmax(prototype logits x T)
    task: torch.Tensor  # N: the task whose adapter gave the final logits
    rounds: torch.Tensor  # N: head evaluations used (1 .. max_rounds)


FeaturesFor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def refine(
    head: nn.Module,
    features_for: FeaturesFor,
    prototype_logits: torch.Tensor,
    task_of_class: torch.Tensor,
    num_tasks: int,
    max_rounds: int = 4,
) -> Retrieval:
    """Retrieval for N samples.

    ``features_for(tasks, rows)`` returns the features of samples ``rows`` under the
    adapters of ``tasks`` (one task per row). ``prototype_logits`` (N x C) come from
    the first task's adapter; ``task_of_class`` maps each of the C seen classes to its
    task; ``num_tasks`` (tasks seen) sharpens the prototype term as the code does.
    """
    n, seen = prototype_logits.shape
    device = prototype_logits.device
    proposed = task_of_class[prototype_logits.argmax(1)]
    used = proposed.clone()
    final = torch.empty(n, seen, device=device)
    rounds = torch.zeros(n, dtype=torch.int64, device=device)
    active = torch.arange(n, device=device)  # samples whose task may still change
    for round_ in range(1, max_rounds + 1):
        used[active] = proposed[active]
        logits = head(features_for(used[active], active))[:, :seen]
        final[active] = logits
        rounds[active] = round_
        proposed[active] = task_of_class[logits.argmax(1)]
        active = active[proposed[active] != used[active]]
        if len(active) == 0:
            break
    scores = final.softmax(1) + (prototype_logits * num_tasks).softmax(1)
    return Retrieval(scores=scores, task=used, rounds=rounds)

"""MOS's prediction written as a per-image loop over its stored parts, straight from the
method notes, as an independent reference for the batched retrieval it ships."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def naive_prediction(mos, image: torch.Tensor, backend=None) -> tuple[int, int]:
    """(label, head evaluations) for one image (a batch of one): the first adapter set's
    prototype match picks a task, its adapters' head proposes a class, and the task of
    that class is retried until it agrees or four rounds have run; the answer mixes the
    last round's head with the prototype scores."""
    backend = backend or mos.backbone
    image = image[None] if image.dim() == 3 else image
    seen, tasks = len(mos.task_of_class_), len(mos.stored_)
    first = backend.forward(image, mos.stored_[0])
    prototype_logits = F.normalize(first, dim=1) @ F.normalize(mos.prototypes_, dim=1).T
    task = int(mos.task_of_class_[prototype_logits.argmax()])
    rounds = 0
    while True:
        logits = mos.head_(backend.forward(image, mos.stored_[task]))[:, :seen]
        rounds += 1
        proposed = int(mos.task_of_class_[logits.argmax()])
        if rounds == mos.config.retrieval_rounds or proposed == task:
            break
        task = proposed
    scores = logits.softmax(1) + (prototype_logits * tasks).softmax(1)
    return int(scores.argmax()), rounds

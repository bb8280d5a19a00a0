"""Avalanche strategies whose code has a defect that breaks them here, done right in a
subclass (Avalanche itself is never patched).

``ER_ACE``: Avalanche 0.6's ``ACECriterion`` takes the log of a softmax
(``cross_entropy_with_oh_targets``), which is 0 for a class whose logit trails the
largest by more than ~104 (float32), so log 0 = -inf, 0 * -inf = NaN, and the head's
weights become NaN from the second experience on (measured on offline-mix: logits over
100 apart after the first experience). The asymmetric loss itself (cross-entropy of the
incoming batch over its own classes, plus cross-entropy of the replayed batch over all
classes) is computed here with ``F.cross_entropy``, which works in log space.

``SynapticIntelligence``: Avalanche 0.6's plugin snapshots the weights with
``param.detach().cpu().flatten()``, which on a CPU is a view of the live parameter, not
a copy. The "old" weights then move with every optimiser step, each step's path
``grad * (new - old)`` is 0, the importance stays 0, and SI trains exactly as Naive
(measured: identical accuracy matrices on all three seeds). The subclass keeps copies
of the two snapshots (the weights before each step and at the start of each
experience); everything else is Avalanche's.

``MAS``: Avalanche 0.6's plugin checks ``if not strategy.loss`` before adding its
penalty, and a loss tensor that is exactly 0 (a minibatch the head already classifies
with float32 certainty, which happens on offline-mix) is falsy, so the run stops with
"Loss is not available". The subclass tests for a missing loss (``None``) instead;
the penalty, ``lambda_reg * sum(importance * (param - old)^2)``, is MAS's own.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from avalanche.training import ER_ACE, MAS, SynapticIntelligence
from avalanche.training.plugins import MASPlugin, SynapticIntelligencePlugin


def asymmetric_cross_entropy(
    incoming: torch.Tensor,
    labels: torch.Tensor,
    replayed: torch.Tensor,
    replay_labels: torch.Tensor,
) -> torch.Tensor:
    """Caccia et al.'s ACE loss: the incoming batch competes only among its own classes."""
    current = torch.unique(labels)  # sorted, so searchsorted gives each label's column
    incoming_loss = F.cross_entropy(incoming[:, current], torch.searchsorted(current, labels))
    return (F.cross_entropy(replayed, replay_labels) + incoming_loss) / 2


class StableER_ACE(ER_ACE):
    """ER-ACE with its loss computed in log space (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ace_criterion = asymmetric_cross_entropy

    __init__.__signature__ = inspect.signature(ER_ACE.__init__)  # its --set keys


class CopyingSIPlugin(SynapticIntelligencePlugin):
    """Avalanche's SI plugin with its weight snapshots copied, not aliased."""

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)
        _own(self.ewc_data[0])  # the weights at the start of the experience

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_iteration(strategy, **kwargs)
        _own(self.syn_data["old_theta"])  # the weights before this step


def _own(snapshot: dict[str, Any]) -> None:
    for entry in snapshot.values():
        entry.data = entry.data.clone()


class StableSynapticIntelligence(SynapticIntelligence):
    """SynapticIntelligence with :class:`CopyingSIPlugin` (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.plugins = [
            CopyingSIPlugin(p.si_lambda, p.eps, p.excluded_parameters)
            if type(p) is SynapticIntelligencePlugin
            else p
            for p in self.plugins
        ]

    __init__.__signature__ = inspect.signature(SynapticIntelligence.__init__)  # its --set keys


class ZeroLossMASPlugin(MASPlugin):
    """Avalanche's MAS plugin, with a loss of exactly 0 accepted (see the module docstring)."""

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        if strategy.clock.train_exp_counter == 0:
            return
        if not self.importance or not self.params or strategy.loss is None:
            raise ValueError("MAS: importance, parameters or loss are not available")
        penalty = sum(
            (self.importance[name].expand(param.shape)
             * (param - self.params[name].expand(param.shape)).pow(2)).sum()
            for name, param in strategy.model.named_parameters()
            if name in self.importance
        )  # fmt: skip
        strategy.loss += self._lambda * penalty


class StableMAS(MAS):
    """MAS with :class:`ZeroLossMASPlugin` (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.plugins = [
            ZeroLossMASPlugin(p._lambda, p.alpha, p.verbose) if type(p) is MASPlugin else p
            for p in self.plugins
        ]

    __init__.__signature__ = inspect.signature(MAS.__init__)  # its --set keys

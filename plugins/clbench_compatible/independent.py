"""The no-compatibility baseline: every update trains a new head from scratch with
cross-entropy and nothing ties its space to the previous one."""

from __future__ import annotations

from clbench_compatible.base import CompatibleHeads


class IndependentHead(CompatibleHeads):
    """:class:`CompatibleHeads` as is: a fresh head per update, the default training."""

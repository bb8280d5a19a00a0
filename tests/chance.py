"""Bounds that say a classifier learned something: correct answers beyond what guessing
among the candidate classes gives, with a three-sigma binomial margin."""

from __future__ import annotations

import math


def above_chance(correct: int, total: int, classes: int) -> bool:
    """Whether ``correct`` of ``total`` answers is more than uniform guessing among
    ``classes`` gives in 99.9% of draws (its mean plus three standard deviations)."""
    p = 1 / classes
    return correct > total * p + 3 * math.sqrt(total * p * (1 - p))

"""Text from records and plugins (names, variants, descriptions) is untrusted: it is
escaped wherever it is rendered, so that it reads as written and never as markup."""

from __future__ import annotations

import html
import math
import re


def markdown_text(value: object) -> str:
    """Literal in Markdown, table cells included: HTML (``<script>`` stays text), pipes
    (a ``|`` would split a cell), Markdown's own punctuation and line breaks."""
    text = html.escape(" ".join(str(value).split()), quote=False)
    text = re.sub(r"([\\`*\[\]|#!])", r"\\\1", text)
    # an underscore inside a word (efficientnet_lite0) never starts emphasis: kept as is
    return re.sub(r"(?<!\w)_|_(?!\w)", r"\\_", text)


def plot_text(value: object) -> str:
    """Literal in a matplotlib label: a ``$`` pair would otherwise start mathtext."""
    return str(value).replace("$", r"\$")


def mean_and_std(mean: float, std: float) -> str:
    """A leaderboard cell: mean ± sample std over seeds, the mean alone for one seed,
    n/a without a value (the same text in Markdown and on the site)."""
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f} ± {std:.2f}"

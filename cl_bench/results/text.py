"""Text from records and plugins (names, variants, descriptions) is untrusted: it is
escaped wherever it is rendered, so that it reads as written and never as markup."""

from __future__ import annotations

import html
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

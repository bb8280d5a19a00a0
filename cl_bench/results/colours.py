"""The colours of accuracy curves, one order for the PNG plot and the site, so that a row
has the same colour in both."""

from __future__ import annotations


def curve_colours() -> list[tuple[float, float, float]]:
    """tab20's dark hues, then their light pairs (20 distinct colours, RGB in [0, 1])."""
    from matplotlib import colormaps  # imported where curves are drawn: it is slow to load

    colours = colormaps["tab20"].colors
    return list(colours[::2] + colours[1::2])

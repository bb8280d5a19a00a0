"""Charts as inline SVG text: the site stays one folder of static files, with no
library and no network. Every label is escaped here, as the SVG is inserted verbatim."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

Matrix = Sequence[Sequence[float | None]]

WIDTH, HEIGHT = 720, 360
MARGIN = {"left": 48, "right": 12, "top": 12, "bottom": 40}


@dataclass(frozen=True)
class Curve:
    """One row's accuracy after each experience: the mean over seeds, and its std."""

    id: str
    label: str
    mean: Sequence[float]
    std: Sequence[float] | None
    colour: str
    reference: bool = False


def _opening(width: float, height: float, kind: str, title: str, sized: bool = True) -> list[str]:
    """An SVG's start: its box, CSS class and accessible title (with its size in pixels
    unless it scales with the page)."""
    size = f' width="{width}" height="{height}"' if sized else ""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'class="{kind}" role="img" aria-label="{escape(title)}"{size}>',
        f"<title>{escape(title)}</title>",
    ]


def _number(value: float) -> str:
    return f"{value:.1f}"


def curves_svg(curves: Sequence[Curve], title: str) -> str:
    """Accuracy versus experience, one ``<g id=...>`` per curve (the page toggles them)."""
    steps = max(len(curve.mean) for curve in curves)
    lows = [
        m - (s or 0.0)
        for c in curves
        for m, s in zip(c.mean, c.std or [0.0] * len(c.mean), strict=True)
    ]
    bottom = max(0.0, math.floor(min(lows, default=0.0) / 10) * 10)
    plot_w = WIDTH - MARGIN["left"] - MARGIN["right"]
    plot_h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]

    def x(step: int) -> float:  # step is 1-based
        return MARGIN["left"] + (plot_w * (step - 1) / (steps - 1) if steps > 1 else plot_w / 2)

    def y(value: float) -> float:
        value = min(max(value, bottom), 100.0)
        return MARGIN["top"] + plot_h * (100.0 - value) / (100.0 - bottom)

    parts = _opening(WIDTH, HEIGHT, "chart", title, sized=False)
    for tick in range(int(bottom), 101, 10):
        parts.append(
            f'<line class="grid" x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" '
            f'y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
            f'<text class="tick" x="{MARGIN["left"] - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{tick}</text>'
        )
    for step in range(1, steps + 1):
        parts.append(
            f'<text class="tick" x="{x(step):.1f}" y="{HEIGHT - MARGIN["bottom"] + 16}" '
            f'text-anchor="middle">{step}</text>'
        )
    parts.append(
        f'<text class="axis" x="{MARGIN["left"] + plot_w / 2:.1f}" y="{HEIGHT - 6}" '
        'text-anchor="middle">experience</text>'
        f'<text class="axis" transform="translate(12 {MARGIN["top"] + plot_h / 2:.1f}) '
        'rotate(-90)" text-anchor="middle">accuracy on all classes seen (%)</text>'
    )
    for curve in curves:
        parts.append(_curve(curve, x, y))
    parts.append("</svg>")
    return "\n".join(parts)


def _curve(curve: Curve, x, y) -> str:
    label = escape(curve.label)
    points = [(x(i + 1), y(m)) for i, m in enumerate(curve.mean)]
    line = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    dash = ' stroke-dasharray="6 4"' if curve.reference else ""
    parts = [f'<g class="curve" id="{escape(curve.id)}" data-label="{label}">']
    if curve.std is not None:
        pairs = list(enumerate(zip(curve.mean, curve.std, strict=True)))
        upper, lower = ([(x(i + 1), y(m + sign * s)) for i, (m, s) in pairs] for sign in (1, -1))
        band = " ".join(f"{px:.1f},{py:.1f}" for px, py in upper + lower[::-1])
        parts.append(f'<polygon class="band" points="{band}" fill="{curve.colour}"/>')
    parts.append(f'<polyline points="{line}" stroke="{curve.colour}"{dash}/>')
    for step, ((px, py), value) in enumerate(zip(points, curve.mean, strict=True), start=1):
        parts.append(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{curve.colour}">'
            f"<title>{label}, experience {step}: {_number(value)}%</title></circle>"
        )
    parts.append("</g>")
    return "".join(parts)


def heatmap_svg(matrix: Matrix, title: str, cell: int = 34) -> str:
    """A lower-triangular matrix M[t][j] (rows: after experience t; columns: experience j),
    each cell coloured by its value on a 0-100 scale and, when cells are large enough,
    labelled with it."""
    size = len(matrix)
    left, top = 34, 22
    width, height = left + cell * size + 4, top + cell * size + 4
    parts = _opening(width, height, "heatmap", title)
    for j in range(size):
        parts.append(
            f'<text class="tick" x="{left + cell * j + cell / 2:.0f}" y="{top - 6}" '
            f'text-anchor="middle">{j + 1}</text>'
            f'<text class="tick" x="{left - 6}" y="{top + cell * j + cell / 2 + 4:.0f}" '
            f'text-anchor="end">{j + 1}</text>'
        )
    for t, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            fill, ink = colour_scale(value)
            cx, cy = left + cell * j, top + cell * t
            parts.append(
                f'<rect x="{cx}" y="{cy}" width="{cell}" height="{cell}" fill="{fill}">'
                f"<title>after experience {t + 1}, experience {j + 1}: "
                f"{_number(value)}%</title></rect>"
            )
            if cell >= 24:  # small multiples show colour only; the title has the value
                parts.append(
                    f'<text x="{cx + cell / 2:.0f}" y="{cy + cell / 2 + 4:.0f}" '
                    f'text-anchor="middle" fill="{ink}" class="value">{value:.0f}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


# viridis at 0, 25, 50, 75 and 100 %: interpolated linearly in between
_VIRIDIS = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]


def colour_scale(value: float) -> tuple[str, str]:
    """The fill of a 0-100 value, and a text colour that reads on it."""
    position = min(max(value, 0.0), 100.0) / 100.0 * (len(_VIRIDIS) - 1)
    low = min(int(position), len(_VIRIDIS) - 2)
    share = position - low
    rgb = [
        round(a + (b - a) * share) for a, b in zip(_VIRIDIS[low], _VIRIDIS[low + 1], strict=True)
    ]
    luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    return "#{:02x}{:02x}{:02x}".format(*rgb), "#000" if luminance > 140 else "#fff"


def history_svg(history: Sequence[Sequence[float | None]], title: str) -> str:
    """A tuning study's trials: each finished trial's value (a dot) and the best so far
    (a step line), trial number on the x axis."""
    done = [(int(n), float(v)) for n, v in history if v is not None]
    if not done:
        return ""
    width, height, left, bottom, top = 480, 220, 44, 30, 10
    last = max(n for n, _ in done) or 1
    low, high = min(v for _, v in done), max(v for _, v in done)
    low, high = (low - 1, high + 1) if high - low < 2 else (low, high)

    def x(n: float) -> float:
        return left + (width - left - 8) * n / last

    def y(v: float) -> float:
        return top + (height - top - bottom) * (high - v) / (high - low)

    best, path = -math.inf, []
    for n, v in sorted(done):
        best = max(best, v)
        path.append(f"{'M' if not path else 'L'}{x(n):.1f},{y(best):.1f}")
    parts = [
        *_opening(width, height, "history", title),
        f'<text class="tick" x="{left - 6}" y="{y(high) + 4:.0f}" text-anchor="end">'
        f"{high:.1f}</text>",
        f'<text class="tick" x="{left - 6}" y="{y(low) + 4:.0f}" text-anchor="end">'
        f"{low:.1f}</text>",
        f'<text class="tick" x="{(left + width) / 2:.0f}" y="{height - 8}" '
        f'text-anchor="middle">trial</text>',
        f'<path d="{" ".join(path)}" fill="none" stroke="#1f77b4" stroke-width="2"/>',
    ]
    parts += [f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3" fill="#555">'
              f"<title>trial {n}: {v:.2f}</title></circle>" for n, v in done]  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(values: dict[str, float], title: str) -> str:
    """Horizontal bars, one a key (a study's parameter importances, summing to 1)."""
    if not values:
        return ""
    row, left, width = 24, 150, 480
    height = row * len(values) + 8
    top = max(values.values()) or 1.0
    parts = _opening(width, height, "bars", title)
    for i, (key, value) in enumerate(sorted(values.items(), key=lambda kv: -kv[1])):
        length = (width - left - 50) * value / top
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{i * row + 18}" text-anchor="end">'
            f"{escape(key)}</text>"
            f'<rect x="{left}" y="{i * row + 6}" width="{length:.1f}" height="{row - 8}" '
            f'fill="#1f77b4"><title>{escape(key)}: {value:.2f}</title></rect>'
            f'<text class="tick" x="{left + length + 4:.1f}" y="{i * row + 18}">{value:.2f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)

"""Small, dependency-free SVG charts for ``report.html``: it must open offline, from a CI
artifact, with no script or stylesheet fetched from anywhere.

Two shapes cover the report: lines (a CDF per endpoint or mirror) and bars (a histogram, a
per-second timeline, stacked when there are several series).

Every chart has a ``viewBox`` and no fixed size in CSS terms (the page scales it down to a
narrow screen), draws its marks inside ``<g class="plot">`` and its frame as
``<rect class="frame">``: the browser tests check that every mark stays inside that frame and
that no axis title touches a tick label (``class="tick"``, ``class="axis-title"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 72, 150, 34, 50
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
TICK_GAP = 14
"""From the plot's bottom edge to the baseline of the x tick labels."""


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``low..high``: steps of 1, 2 or 5 times a power of ten.

    The last tick is always at or above ``high``: the axis ends there, and a value above it
    would be drawn outside the frame.
    """
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + 1
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    k = 0
    while not ticks or ticks[-1] < high:
        ticks.append(round(start + k * step, 10))
        k += 1
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2g}"


def _open(title: str, height: int = HEIGHT) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" preserveAspectRatio="xMinYMin meet" role="img" '
            f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
            f'<text class="title" x="{LEFT}" y="18" font-size="13" font-weight="bold">'
            f'{escape(title)}</text>']


def _frame(title: str, x_label: str, y_label: str, xs: list[float], ys: list[float],
           x_ticks: bool = True) -> tuple[list[str], float, float, float, float]:
    x0, x1, y0, y1 = xs[0], xs[-1], ys[0], ys[-1]
    parts = _open(title)
    for x in xs if x_ticks else ():
        px = LEFT + (x - x0) / (x1 - x0) * PLOT_W
        parts.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{TOP + PLOT_H}" '
                     'stroke="#eee"/>')
        parts.append(f'<text class="tick" x="{px:.1f}" y="{TOP + PLOT_H + TICK_GAP}" '
                     f'text-anchor="middle">{_fmt(x)}</text>')
    for y in ys:
        py = TOP + PLOT_H - (y - y0) / (y1 - y0) * PLOT_H
        parts.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{LEFT + PLOT_W}" y2="{py:.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{py + 4:.1f}" '
                     f'text-anchor="end">{_fmt(y)}</text>')
    parts.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{PLOT_W}" '
                 f'height="{PLOT_H}" fill="none" stroke="#999"/>')
    # Titles sit clear of the tick labels: the x title a line below them, the y title left
    # of the widest label the y axis can have (six characters).
    parts.append(f'<text class="axis-title" x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 10}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text class="axis-title" x="14" y="{TOP + PLOT_H / 2}" '
                 f'text-anchor="middle" transform="rotate(-90 14 {TOP + PLOT_H / 2})">'
                 f'{escape(y_label)}</text>')
    return parts, x0, x1, y0, y1


def _legend(parts: list[str], names: Sequence[str], colours: Sequence[str] = PALETTE) -> None:
    parts.append('<g class="legend">')
    for i, name in enumerate(names):
        y = TOP + 8 + i * 16
        parts.append(f'<rect x="{WIDTH - RIGHT + 10}" y="{y - 8}" width="10" height="10" '
                     f'fill="{colours[i % len(colours)]}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 25}" y="{y + 1}">{escape(name[:22])}</text>')
    parts.append("</g>")


def empty(title: str, why: str) -> str:
    """A placeholder where a chart has no data (``report.html`` prefers a sentence)."""
    parts = _open(title, 60)
    parts.append(f'<text x="{LEFT}" y="42">{escape(why)}</text></svg>')
    return "".join(parts)


def cdf(series: Mapping[str, Sequence[float]], title: str, x_label: str) -> str:
    """Empirical CDFs, one line per series (x: value, y: fraction of samples at or below)."""
    data = {name: sorted(x for x in v if math.isfinite(x)) for name, v in series.items()}
    data = {name: v for name, v in data.items() if v}
    if not data:
        return empty(title, "no samples")
    high = max(v[-1] for v in data.values())
    parts, x0, x1, y0, y1 = _frame(title, x_label, "fraction of requests",
                                   nice_ticks(0, high), nice_ticks(0, 1))
    parts.append('<g class="plot">')
    for i, values in enumerate(data.values()):
        n = len(values)
        step = max(1, n // 400)  # at most ~400 points a line: the file stays small
        points = [(values[k], (k + 1) / n) for k in range(0, n, step)] + [(values[-1], 1.0)]
        path = " ".join(f"{LEFT + (x - x0) / (x1 - x0) * PLOT_W:.1f},"
                        f"{TOP + PLOT_H - (y - y0) / (y1 - y0) * PLOT_H:.1f}"
                        for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{PALETTE[i % len(PALETTE)]}" '
                     f'stroke-width="1.8" points="{path}"/>')
    parts.append("</g>")
    _legend(parts, list(data))
    parts.append("</svg>")
    return "".join(parts)


def bars(labels: Sequence[str], stacks: Mapping[str, Sequence[float]], title: str,
         x_label: str, y_label: str, colours: Sequence[str] = PALETTE) -> str:
    """Bars per label, the series stacked on each other."""
    if not labels or not stacks:
        return empty(title, "no data")
    totals = [sum(s[i] for s in stacks.values()) for i in range(len(labels))]
    parts, _, _, y0, y1 = _frame(title, x_label, y_label, [0.0, float(len(labels))],
                                 nice_ticks(0, max(totals) or 1), x_ticks=False)
    width = PLOT_W / len(labels)
    gap = min(1.0, width / 10)  # a thin gap between bars that never pushes one past the frame
    every = max(1, math.ceil(len(labels) / 8))  # at most 8 labels: they never touch
    parts.append('<g class="plot">')
    for i in range(len(labels)):
        base = 0.0
        for j, values in enumerate(stacks.values()):
            value = values[i]
            if value:
                top = TOP + PLOT_H - (base + value - y0) / (y1 - y0) * PLOT_H
                height = value / (y1 - y0) * PLOT_H
                parts.append(f'<rect x="{LEFT + i * width + gap:.2f}" y="{top:.2f}" '
                             f'width="{width - 2 * gap:.2f}" height="{height:.2f}" '
                             f'fill="{colours[j % len(colours)]}"/>')
            base += value
    parts.append("</g>")
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(f'<text class="tick" x="{LEFT + (i + 0.5) * width:.1f}" '
                         f'y="{TOP + PLOT_H + TICK_GAP}" text-anchor="middle">'
                         f'{escape(label)}</text>')
    if len(stacks) > 1:  # one series needs no legend: the title names it
        _legend(parts, list(stacks), colours)
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: Sequence[float], title: str, x_label: str, buckets: int = 20) -> str:
    """A histogram of ``values`` in equal-width buckets (labelled by their lower edge)."""
    data = sorted(v for v in values if math.isfinite(v))
    if not data:
        return empty(title, "no samples")
    low, high = data[0], data[-1]
    width = (high - low) / buckets or 1.0
    counts = [0.0] * buckets
    for v in data:
        counts[min(buckets - 1, int((v - low) / width))] += 1
    labels = [_fmt(low + i * width) for i in range(buckets)]
    return bars(labels, {"requests": counts}, title, x_label, "requests")


def lines(series: Mapping[str, Sequence[tuple[float, float]]], title: str, x_label: str,
          y_label: str, bound: float | None = None) -> str:
    """Lines over x (time, say), one per series of ``(x, y)`` points; ``bound`` a dashed
    horizontal line (an objective, a limit) the y axis always reaches."""
    data = {name: sorted((x, y) for x, y in points if math.isfinite(x) and math.isfinite(y))
            for name, points in series.items()}
    data = {name: points for name, points in data.items() if points}
    if not data:
        return empty(title, "no samples")
    high_x = max(p[-1][0] for p in data.values())
    high_y = max(max(y for _, y in p) for p in data.values())
    if bound is not None and math.isfinite(bound):
        high_y = max(high_y, bound)
    parts, x0, x1, y0, y1 = _frame(title, x_label, y_label, nice_ticks(0, high_x or 1),
                                   nice_ticks(0, high_y or 1))

    def at(x: float, y: float) -> str:
        return (f"{LEFT + (x - x0) / (x1 - x0) * PLOT_W:.1f},"
                f"{TOP + PLOT_H - (y - y0) / (y1 - y0) * PLOT_H:.1f}")

    parts.append('<g class="plot">')
    for i, points in enumerate(data.values()):
        step = max(1, len(points) // 400)
        kept = [*points[::step], points[-1]] if step > 1 else points
        parts.append(f'<polyline fill="none" stroke="{PALETTE[i % len(PALETTE)]}" '
                     f'stroke-width="1.8" points="{" ".join(at(x, y) for x, y in kept)}"/>')
    if bound is not None and math.isfinite(bound):
        left, right = at(x0, bound), at(x1, bound)
        parts.append(f'<polyline class="bound" fill="none" stroke="#000" '
                     f'stroke-dasharray="4 3" points="{left} {right}"/>')
    parts.append("</g>")
    _legend(parts, [*data, *(["bound"] if bound is not None else [])],
            [*PALETTE[:len(data)], "#000"])
    parts.append("</svg>")
    return "".join(parts)

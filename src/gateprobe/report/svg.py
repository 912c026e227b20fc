"""Small, dependency-free SVG charts for ``report.html``: it must open offline, from a CI
artifact, with no script or stylesheet fetched from anywhere.

Two shapes cover the report: lines (a CDF per endpoint or mirror) and bars (a histogram, a
per-second timeline, stacked when there are several series).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 150, 30, 45


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``low..high``: steps of 1, 2 or 5 times a power of ten."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + 1
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks, value = [], start
    while value < high + step / 2:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2g}"


def _frame(title: str, x_label: str, y_label: str, xs: list[float], ys: list[float],
           x_ticks: bool = True) -> tuple[list[str], float, float, float, float]:
    x0, x1, y0, y1 = xs[0], xs[-1], ys[0], ys[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
             'font-family="sans-serif" font-size="11">',
             f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>']
    for x in xs if x_ticks else ():
        px = LEFT + (x - x0) / (x1 - x0) * plot_w
        parts.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{TOP + plot_h}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{px:.1f}" y="{TOP + plot_h + 14}" '
                     f'text-anchor="middle">{_fmt(x)}</text>')
    for y in ys:
        py = TOP + plot_h - (y - y0) / (y1 - y0) * plot_h
        parts.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{LEFT + plot_w}" y2="{py:.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
                 'stroke="#999"/>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(y_label)}</text>')
    return parts, x0, x1, y0, y1


def _legend(parts: list[str], names: Sequence[str]) -> None:
    for i, name in enumerate(names):
        y = TOP + 8 + i * 16
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{WIDTH - RIGHT + 10}" y="{y - 8}" width="10" height="10" '
                     f'fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 25}" y="{y + 1}">{escape(name[:22])}</text>')


def empty(title: str, why: str) -> str:
    """A placeholder where a chart has no data."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="60" '
            f'font-family="sans-serif" font-size="12"><text x="10" y="20" font-weight="bold">'
            f'{escape(title)}</text><text x="10" y="42">{escape(why)}</text></svg>')


def cdf(series: Mapping[str, Sequence[float]], title: str, x_label: str) -> str:
    """Empirical CDFs, one line per series (x: value, y: fraction of samples at or below)."""
    data = {name: sorted(v) for name, v in series.items() if v}
    if not data:
        return empty(title, "no samples")
    high = max(v[-1] for v in data.values())
    parts, x0, x1, y0, y1 = _frame(title, x_label, "fraction of requests",
                                   nice_ticks(0, high), nice_ticks(0, 1))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    for i, values in enumerate(data.values()):
        n = len(values)
        step = max(1, n // 400)  # at most ~400 points a line: the file stays small
        points = [(values[k], (k + 1) / n) for k in range(0, n, step)] + [(values[-1], 1.0)]
        path = " ".join(f"{LEFT + (x - x0) / (x1 - x0) * plot_w:.1f},"
                        f"{TOP + plot_h - (y - y0) / (y1 - y0) * plot_h:.1f}"
                        for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{PALETTE[i % len(PALETTE)]}" '
                     f'stroke-width="1.8" points="{path}"/>')
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
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    width = plot_w / len(labels)
    every = max(1, len(labels) // 12)
    for i, label in enumerate(labels):
        base = 0.0
        for j, values in enumerate(stacks.values()):
            value = values[i]
            if value:
                top = TOP + plot_h - (base + value - y0) / (y1 - y0) * plot_h
                height = value / (y1 - y0) * plot_h
                parts.append(f'<rect x="{LEFT + i * width + 1:.1f}" y="{top:.1f}" '
                             f'width="{max(1.0, width - 2):.1f}" height="{height:.1f}" '
                             f'fill="{colours[j % len(colours)]}"/>')
            base += value
        if i % every == 0:
            parts.append(f'<text x="{LEFT + (i + 0.5) * width:.1f}" y="{TOP + plot_h + 28}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    names = list(stacks)
    for i, name in enumerate(names):
        y = TOP + 8 + i * 16
        parts.append(f'<rect x="{WIDTH - RIGHT + 10}" y="{y - 8}" width="10" height="10" '
                     f'fill="{colours[i % len(colours)]}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 25}" y="{y + 1}">{escape(name[:22])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: Sequence[float], title: str, x_label: str, buckets: int = 20) -> str:
    """A histogram of ``values`` in equal-width buckets."""
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

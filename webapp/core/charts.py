"""Server-side SVG line charts: no JavaScript library, nothing fetched. Every piece of text that
goes into the markup (series names, axis labels, tick labels) is escaped here, so the result is
returned marked safe and a template can place it as is.

    line_chart([{"name": "loss", "points": [(1, 2.3), (2, 2.1)]}], "step", "loss")
    line_chart(series, "model version", "pass@k", y_range=(0, 1), percent=True,
               x_ticks={0: "v0", 1: "v1"})
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-friendly (Okabe–Ito) strokes, one per series in order.
PALETTE = ("#1f4fd1", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#5d6478")
MARGIN = {"left": 56, "right": 16, "top": 14, "bottom": 44}
LEGEND_ROW = 18
MAX_POINTS = 600  # per polyline
MARKERS_UP_TO = 40  # points per series drawn as dots as well (a few versions, not a long loss curve)


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _clean(points) -> list[tuple[float, float]]:
    """(x, y) pairs with finite numbers, sorted by x; anything else is skipped."""
    cleaned = []
    for point in points or ():
        try:
            x, y = _finite(point[0]), _finite(point[1])
        except (TypeError, IndexError, KeyError):
            continue
        if x is not None and y is not None:
            cleaned.append((x, y))
    return sorted(cleaned)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2, 2.5 or 5 × 10^n apart) covering [low, high]."""
    if high < low:
        low, high = high, low
    if high == low:
        spread = abs(low) * 0.1 or 1.0
        low, high = low - spread, high + spread
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks, value = [], first
    while value <= high + step * 0.5 and len(ticks) < 50:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high - 1e-12:
        ticks.append(round(value, 10))
    return ticks


def _number(value: float, percent: bool = False, decimals: int | None = None) -> str:
    """A tick or point label; `decimals` (from the tick spacing) keeps close ticks apart."""
    if percent:
        value *= 100
    if decimals is not None:
        text = f"{value:.{decimals}f}"
    elif value == int(value) and abs(value) < 1e6:
        text = str(int(value))
    else:
        text = f"{value:.4g}" if not percent else f"{value:.1f}"
    return text + ("%" if percent else "")


def _decimals(ticks: Sequence[float], percent: bool = False) -> int:
    """Decimals that tell neighbouring ticks apart (0.25 apart: 2; 5 apart: 0)."""
    if len(ticks) < 2:
        return 0
    step = abs(ticks[1] - ticks[0]) * (100 if percent else 1)
    decimals = 0
    while decimals < 8 and abs(step * 10 ** decimals - round(step * 10 ** decimals)) > 1e-6:
        decimals += 1
    return decimals


def line_chart(series: Sequence[Mapping], x_label: str, y_label: str, width: int = 640, height: int = 240,
               y_range: tuple[float, float] | None = None, percent: bool = False,
               x_ticks: Mapping[float, str] | None = None, title: str = "") -> SafeString:
    """An SVG line chart: one polyline per series ({"name", "points": [(x, y), ...]}), axes with
    a few ticks, a legend. `y_range` fixes the y axis (e.g. (0, 1) for pass@k, with `percent`
    for its tick labels); otherwise it fits the data. `x_ticks` names x positions (e.g. version
    names by their order) instead of numbering them. With no data at all it says so."""
    width, height = max(int(width), 200), max(int(height), 120)
    cleaned = [(str(s.get("name", "")), _clean(s.get("points"))) for s in series]
    drawn = [(name, points) for name, points in cleaned if points]
    legend_height = LEGEND_ROW * (1 if drawn else 0)
    plot_left, plot_top = MARGIN["left"], MARGIN["top"] + legend_height
    plot_right, plot_bottom = width - MARGIN["right"], height - MARGIN["bottom"]
    plot_w, plot_h = plot_right - plot_left, max(plot_bottom - plot_top, 20)
    label = escape(title or f"{y_label} by {x_label}")
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{label}" data-testid="chart">',
             f"<title>{label}</title>"]

    if not drawn:
        parts.append(f'<rect class="chart-frame" x="{plot_left}" y="{plot_top}" width="{plot_w}" height="{plot_h}" '
                     'fill="none" stroke="#dfe3ee"/>')
        parts.append(f'<text class="chart-empty" x="{plot_left + plot_w / 2:.1f}" y="{plot_top + plot_h / 2:.1f}" '
                     'text-anchor="middle" dominant-baseline="middle" fill="#5d6478">no data yet</text>')
        parts.append(_axis_labels(x_label, y_label, plot_left, plot_top, plot_w, plot_h, height))
        parts.append("</svg>")
        return mark_safe("".join(parts))

    xs = [x for _, points in drawn for x, _ in points]
    ys = [y for _, points in drawn for _, y in points]
    x_low, x_high = min(xs), max(xs)
    if x_ticks:
        named = [x for x in (_finite(k) for k in x_ticks) if x is not None]
        x_low, x_high = min([x_low, *named]), max([x_high, *named])
    if y_range is not None:
        y_low, y_high = float(y_range[0]), float(y_range[1])
        y_tick_values = nice_ticks(y_low, y_high, 5)
        y_tick_values = [v for v in y_tick_values if y_low - 1e-9 <= v <= y_high + 1e-9]
    else:
        y_tick_values = nice_ticks(min(ys), max(ys), 5)
        y_low, y_high = y_tick_values[0], y_tick_values[-1]
    if y_high == y_low:
        y_high = y_low + 1.0
    if x_high == x_low:  # one x value: centre it
        x_low, x_high = x_low - 1, x_high + 1

    def sx(x: float) -> float:
        return plot_left + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        y = min(max(y, y_low), y_high)  # a fixed range clips what lies outside it
        return plot_bottom - (y - y_low) / (y_high - y_low) * plot_h

    # grid and y ticks
    y_decimals = _decimals(y_tick_values, percent)
    for value in y_tick_values:
        y = sy(value)
        parts.append(f'<line class="chart-grid" x1="{plot_left}" y1="{y:.1f}" x2="{plot_right}" y2="{y:.1f}" '
                     'stroke="#eceff5"/>')
        parts.append(f'<text class="chart-tick" x="{plot_left - 6}" y="{y:.1f}" text-anchor="end" '
                     f'dominant-baseline="middle">{escape(_number(value, percent, y_decimals))}</text>')
    # x ticks: the named positions, or a few round numbers
    if x_ticks:
        ticks = sorted((x, str(name)) for x, name in ((_finite(k), v) for k, v in x_ticks.items()) if x is not None)
        if len(ticks) > 12:  # too many names to read: every n-th one
            every = math.ceil(len(ticks) / 12)
            ticks = ticks[::every]
    else:
        values = [v for v in nice_ticks(x_low, x_high, 6) if x_low - 1e-9 <= v <= x_high + 1e-9]
        ticks = [(v, _number(v, decimals=_decimals(values))) for v in values]
    for value, name in ticks:
        x = sx(value)
        parts.append(f'<line class="chart-tick-mark" x1="{x:.1f}" y1="{plot_bottom}" x2="{x:.1f}" '
                     f'y2="{plot_bottom + 4}" stroke="#5d6478"/>')
        parts.append(f'<text class="chart-tick" x="{x:.1f}" y="{plot_bottom + 16}" text-anchor="middle">'
                     f"{escape(name)}</text>")
    # axes
    parts.append(f'<line class="chart-axis" x1="{plot_left}" y1="{plot_bottom}" x2="{plot_right}" y2="{plot_bottom}" '
                 'stroke="#5d6478"/>')
    parts.append(f'<line class="chart-axis" x1="{plot_left}" y1="{plot_top}" x2="{plot_left}" y2="{plot_bottom}" '
                 'stroke="#5d6478"/>')
    parts.append(_axis_labels(x_label, y_label, plot_left, plot_top, plot_w, plot_h, height))
    # the series and the legend
    legend_x = plot_left
    for index, (name, points) in enumerate(cleaned):
        colour = PALETTE[index % len(PALETTE)]
        if len(points) > MAX_POINTS:  # a long loss curve: every n-th point (and the last) draws the same line
            every = math.ceil(len(points) / MAX_POINTS)
            points = points[::every] + ([points[-1]] if (len(points) - 1) % every else [])
        if points:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
            parts.append(f'<polyline class="chart-line" data-series="{escape(name)}" fill="none" stroke="{colour}" '
                         f'stroke-width="2" stroke-linejoin="round" points="{coords}"/>')
            if len(points) <= MARKERS_UP_TO:
                for x, y in points:
                    parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                                 f"<title>{escape(name)}: {escape(_number(y, percent))}</title></circle>")
        parts.append(f'<g class="chart-legend-item"><rect x="{legend_x}" y="{MARGIN["top"] - 2}" width="12" '
                     f'height="3" fill="{colour}"/><text x="{legend_x + 16}" y="{MARGIN["top"]}" '
                     f'dominant-baseline="middle">{escape(name)}{"" if points else " (no data)"}</text></g>')
        legend_x += 16 + 7 * (len(name) + (0 if points else 10)) + 18
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _axis_labels(x_label: str, y_label: str, left: float, top: float, plot_w: float, plot_h: float,
                 height: int) -> str:
    middle_y = top + plot_h / 2
    return (f'<text class="chart-label" x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
            f"{escape(x_label)}</text>"
            f'<text class="chart-label" x="14" y="{middle_y:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {middle_y:.1f})">{escape(y_label)}</text>')

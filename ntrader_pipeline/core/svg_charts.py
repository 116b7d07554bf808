"""Small, dependency-free SVG charts for the HTML reports: lines (linear or log), areas, bars,
histograms and heatmaps.

Hand-written SVG instead of matplotlib PNGs: a tearsheet has eight charts, and drawing them as
SVG takes milliseconds instead of about a second, stays sharp at any zoom, and keeps the page
self-contained (no scripts, no network). Long series are reduced to the minimum and maximum of
each pixel column, so no peak or trough is lost.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

WIDTH, HEIGHT = 900, 260
MARGIN = {"left": 64, "right": 16, "top": 28, "bottom": 30}
BLUE, GREY, RED, GREEN = "#1f77b4", "#8c8c8c", "#d62728", "#2ca02c"
MAX_POINTS = 1200


@dataclass(frozen=True)
class Line:
    name: str
    x: np.ndarray  # nanoseconds since the epoch (UTC)
    y: np.ndarray
    color: str = BLUE
    area: bool = False  # fill down to zero (underwater charts)
    dash: bool = False


@dataclass(frozen=True)
class Markers:
    name: str
    x: np.ndarray
    y: np.ndarray
    color: str
    shape: str  # "up" or "down" triangle


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 5 × 10^k steps)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step) + 1)]


def reduce_points(x: np.ndarray, y: np.ndarray, buckets: int = MAX_POINTS // 2) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 × buckets`` points: each bucket's minimum and maximum, in time order."""
    n = len(x)
    if n <= 2 * buckets:
        return x, y
    size = math.ceil(n / buckets)
    padded = np.full(size * math.ceil(n / size), np.nan)
    padded[:n] = y
    blocks = padded.reshape(-1, size)
    offsets = np.arange(blocks.shape[0]) * size
    lows = offsets + np.nanargmin(blocks, axis=1)
    highs = offsets + np.nanargmax(blocks, axis=1)
    index = np.unique(np.concatenate([lows, highs]))
    return x[index], y[index]


def _year_ticks(x0: int, x1: int) -> list[tuple[int, str]]:
    start, end = pd.Timestamp(x0, tz="UTC"), pd.Timestamp(x1, tz="UTC")
    years = end.year - start.year
    if years >= 2:
        every = max(1, math.ceil(years / 10))
        return [
            (pd.Timestamp(f"{y}-01-01", tz="UTC").value, str(y)) for y in range(start.year + 1, end.year + 1, every)
        ]
    months = pd.date_range(start.normalize(), end, freq="MS", tz="UTC")
    every = max(1, math.ceil(len(months) / 8))
    return [(m.value, m.strftime("%Y-%m")) for m in months[::every]]


def time_chart(
    chart_id: str,
    title: str,
    lines: Sequence[Line],
    *,
    log: bool = False,
    y_format: Callable[[float], str] = "{:,.0f}".format,
    markers: Sequence[Markers] = (),
    zero_line: bool = False,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """Lines over time (x in ns UTC) as one ``<svg>``; ``log`` puts y on a log10 scale."""
    xs = np.concatenate([ln.x for ln in lines]).astype(np.float64)
    ys = np.concatenate([ln.y for ln in lines]).astype(np.float64)
    finite = np.isfinite(ys) & ((ys > 0) if log else True)
    if not finite.any():
        return _empty(chart_id, title, width, height)
    transform = np.log10 if log else (lambda v: v)
    y_low, y_high = _y_range(transform(ys[finite]), zero_line or any(ln.area for ln in lines))
    x_low, x_high = float(xs.min()), float(xs.max())
    if x_high == x_low:
        x_high = x_low + 1
    left, right, top, bottom = MARGIN["left"], width - MARGIN["right"], MARGIN["top"], height - MARGIN["bottom"]

    def px(x):
        return left + (np.asarray(x, dtype=np.float64) - x_low) / (x_high - x_low) * (right - left)

    def py(y):
        return bottom - (transform(np.asarray(y, dtype=np.float64)) - y_low) / (y_high - y_low) * (bottom - top)

    parts = [_frame_open(chart_id, title, width, height)]
    for t in _y_ticks(y_low, y_high, log):
        y = float(py(t))
        parts.append(
            f'<line class="grid" x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_esc(y_format(t))}</text>'
        )
    for value, label in _year_ticks(int(x_low), int(x_high)):
        x = float(px(value))
        if left <= x <= right:
            parts.append(
                f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>'
                f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{label}</text>'
            )
    if zero_line and not log:
        parts.append(f'<line class="zero" x1="{left}" x2="{right}" y1="{float(py(0)):.1f}" y2="{float(py(0)):.1f}"/>')
    for ln in lines:
        keep = np.isfinite(ln.y) & ((ln.y > 0) if log else True)
        line_x, line_y = reduce_points(np.asarray(ln.x)[keep], np.asarray(ln.y, dtype=np.float64)[keep])
        if not len(line_x):
            continue
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(line_x), py(line_y)))
        if ln.area:
            base = float(py(0))
            parts.append(
                f'<polygon fill="{ln.color}" fill-opacity="0.35" stroke="none" '
                f'points="{float(px(line_x[0])):.1f},{base:.1f} {points} {float(px(line_x[-1])):.1f},{base:.1f}"/>'
            )
        dash = ' stroke-dasharray="5,3"' if ln.dash else ""
        parts.append(
            f'<polyline fill="none" stroke="{ln.color}" stroke-width="1.3"{dash} points="{points}">'
            f"<title>{_esc(ln.name)}</title></polyline>"
        )
    for m in markers:
        parts += _marker_polygons(m, px(m.x), py(m.y))
    parts.append(_legend([(ln.name, ln.color) for ln in lines] + [(m.name, m.color) for m in markers], left, width))
    parts.append("</svg>")
    return "".join(parts)


def _y_range(values: np.ndarray, include_zero: bool) -> tuple[float, float]:
    """The y axis' range over ``values`` (already on the axis' scale), padded 4 % each side."""
    y_low, y_high = float(np.min(values)), float(np.max(values))
    if include_zero:
        y_low, y_high = min(y_low, 0.0), max(y_high, 0.0)
    if y_high == y_low:
        y_low, y_high = y_low - 1, y_high + 1
    pad = (y_high - y_low) * 0.04
    return y_low - pad, y_high + pad


def _y_ticks(y_low: float, y_high: float, log: bool) -> list[float]:
    """Round values on the y axis: powers of ten on a log scale."""
    if not log:
        return nice_ticks(y_low, y_high)
    ticks = [10**e for e in range(math.floor(y_low), math.ceil(y_high) + 1)]
    return [t for t in ticks if y_low <= math.log10(t) <= y_high] or [10**y_low]


def _marker_polygons(markers: Markers, xs: np.ndarray, ys: np.ndarray) -> list[str]:
    """A small triangle at each (x, y) in pixels, pointing up or down."""
    parts = []
    for a, b in zip(xs, ys):
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        tip = (
            f"{a:.1f},{b - 4:.1f} {a - 4:.1f},{b + 4:.1f} {a + 4:.1f},{b + 4:.1f}"
            if markers.shape == "up"
            else f"{a:.1f},{b + 4:.1f} {a - 4:.1f},{b - 4:.1f} {a + 4:.1f},{b - 4:.1f}"
        )
        parts.append(f'<polygon fill="{markers.color}" points="{tip}"/>')
    return parts


def _value_axis(
    values: np.ndarray, top: float, bottom: float, left: float, right: float, y_format: Callable[[float], str]
) -> tuple[Callable[[float], float], list[str]]:
    """A bar chart's vertical axis: zero always in range, 8 % headroom; the value → y mapping and
    the grid lines with their tick labels."""
    low, high = min(0.0, float(np.nanmin(values))), max(0.0, float(np.nanmax(values)))
    if high == low:
        high = low + 1
    pad = (high - low) * 0.08
    low, high = low - (pad if low < 0 else 0), high + pad

    def py(v: float) -> float:
        return bottom - (v - low) / (high - low) * (bottom - top)

    grid = [
        f'<line class="grid" x1="{left}" x2="{right}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>'
        f'<text class="tick" x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_esc(y_format(t))}</text>'
        for t in nice_ticks(low, high)
    ]
    return py, grid


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    y_format: Callable[[float], str] = "{:.0%}".format,
    width: int = WIDTH,
    height: int = HEIGHT,
    colors: Sequence[str] | None = None,
) -> str:
    """Vertical bars (green above zero, red below unless ``colors``), with the value on each bar."""
    vals = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if not np.isfinite(vals).any():
        return _empty(chart_id, title, width, height)
    left, right, top, bottom = MARGIN["left"], width - MARGIN["right"], MARGIN["top"], height - MARGIN["bottom"]
    py, grid = _value_axis(vals, top, bottom, left, right, y_format)
    parts = [_frame_open(chart_id, title, width, height), *grid]
    slot = (right - left) / max(len(vals), 1)
    every = max(1, math.ceil(len(vals) / 14))
    for i, (label, v) in enumerate(zip(labels, vals)):
        x = left + i * slot + slot * 0.15
        if i % every == 0:
            parts.append(
                f'<text class="tick" x="{x + slot * 0.35:.1f}" y="{bottom + 16}" text-anchor="middle">'
                f"{_esc(label)}</text>"
            )
        if not math.isfinite(v):
            continue
        y0, y1 = py(0), py(v)
        color = colors[i] if colors else (GREEN if v >= 0 else RED)
        parts.append(
            f'<rect x="{x:.1f}" y="{min(y0, y1):.1f}" width="{slot * 0.7:.1f}" height="{abs(y1 - y0):.1f}" '
            f'fill="{color}"><title>{_esc(label)}: {_esc(y_format(v))}</title></rect>'
        )
    parts.append(f'<line class="zero" x1="{left}" x2="{right}" y1="{py(0):.1f}" y2="{py(0):.1f}"/></svg>')
    return "".join(parts)


def histogram_bins(values: np.ndarray, bins: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of about ``bins`` equal bins with 0 on an edge, so no bin mixes gains and
    losses. The middle 99.8 % sets the range; the rare tails land in the end bins."""
    low, high = np.quantile(values, [0.001, 0.999]) if len(values) > 100 else (values.min(), values.max())
    low, high = float(min(low, 0.0)), float(max(high, 0.0))
    step = (high - low) / bins or 1e-4
    edges = step * np.arange(math.floor(low / step), math.ceil(high / step) + 1)
    counts, edges = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return counts, edges


def bin_color(low: float, high: float) -> str:
    """Red for a bin of losses only, green for gains only, grey for a bin that spans 0."""
    return RED if high <= 0 else GREEN if low >= 0 else GREY


def histogram(
    chart_id: str, title: str, values: np.ndarray, bins: int = 50, width: int = WIDTH, height: int = HEIGHT
) -> str:
    """A histogram of daily returns (fractions), coloured by the sign of each bin's range.

    Days of exactly 0 (flat: about half the days of a strategy out of the market) are counted in
    the title, not drawn: as a bar they would dwarf every other bin."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    moved = values[values != 0]
    flat = len(values) - len(moved)
    if not len(moved):
        return _empty(chart_id, f"{title} (n = {len(values):,}, all exactly 0)", width, height)
    counts, edges = histogram_bins(moved, bins)
    labels = [f"{(a + b) / 2:.1%}" for a, b in zip(edges[:-1], edges[1:])]
    colors = [bin_color(a, b) for a, b in zip(edges[:-1], edges[1:])]
    caption = f"{title} (n = {len(values):,}, mean {values.mean():.2%})"
    if flat:
        caption += f"; {flat:,} flat days (exactly 0) not drawn"
    chart = bar_chart(
        chart_id, caption, labels, counts.tolist(), y_format="{:,.0f}".format, width=width, height=height, colors=colors
    )
    return chart.replace("<svg ", f'<svg data-flat-days="{flat}" ', 1)


def grouped_bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    groups: Sequence[tuple[str, Sequence[float | None], str]],
    y_format: Callable[[float], str] = "{:.0%}".format,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """Bars of several series side by side per label (``groups``: name, values, colour), with a legend."""
    series = [np.array([np.nan if v is None else v for v in values], dtype=np.float64) for _, values, _ in groups]
    every_value = np.concatenate(series) if series else np.array([])
    if not np.isfinite(every_value).any():
        return _empty(chart_id, title, width, height)
    left, right, top, bottom = MARGIN["left"], width - MARGIN["right"], MARGIN["top"], height - MARGIN["bottom"]
    py, grid = _value_axis(every_value, top, bottom, left, right, y_format)
    parts = [_frame_open(chart_id, title, width, height), *grid]
    slot = (right - left) / max(len(labels), 1)
    bar = slot * 0.8 / max(len(groups), 1)
    every = max(1, math.ceil(len(labels) / 14))
    for i, label in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        if i % every == 0:
            parts.append(
                f'<text class="tick" x="{left + (i + 0.5) * slot:.1f}" y="{bottom + 16}" text-anchor="middle">'
                f"{_esc(label)}</text>"
            )
        for k, ((name, _, color), values) in enumerate(zip(groups, series)):
            v = values[i] if i < len(values) else np.nan
            if not math.isfinite(v):
                continue
            y0, y1 = py(0), py(v)
            parts.append(
                f'<rect x="{x0 + k * bar:.1f}" y="{min(y0, y1):.1f}" width="{bar * 0.95:.1f}" '
                f'height="{abs(y1 - y0):.1f}" fill="{color}"><title>{_esc(label)} {_esc(name)}: '
                f"{_esc(y_format(v))}</title></rect>"
            )
    parts.append(f'<line class="zero" x1="{left}" x2="{right}" y1="{py(0):.1f}" y2="{py(0):.1f}"/>')
    parts.append(_legend([(name, color) for name, _, color in groups], left, width))
    parts.append("</svg>")
    return "".join(parts)


def heatmap(
    chart_id: str,
    title: str,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    values: np.ndarray,
    fmt: Callable[[float], str] = "{:.1%}".format,
    row_title: str = "",
    col_title: str = "",
    width: int = WIDTH,
    own_scale_from: int | None = None,
) -> str:
    """A table of coloured cells: red below zero, green above (scaled to the largest magnitude).

    Columns from ``own_scale_from`` on (a year's total beside its months) have their own scale."""
    values = np.asarray(values, dtype=np.float64)
    cell_h, label_w, top = 22, 70, 44
    cell_w = (width - label_w - 10) / max(len(col_labels), 1)
    height = top + cell_h * len(row_labels) + 10
    split = len(col_labels) if own_scale_from is None else own_scale_from

    def largest(block: np.ndarray) -> float:
        return float(np.nanmax(np.abs(block))) if np.isfinite(block).any() else 1.0

    scales = [largest(values[:, :split]) if j < split else largest(values[:, split:]) for j in range(len(col_labels))]
    parts = [_frame_open(chart_id, title, width, height)]
    if col_title:
        parts.append(
            f'<text class="tick" x="{label_w + (width - label_w) / 2:.0f}" y="{top - 22}" '
            f'text-anchor="middle">{_esc(col_title)}</text>'
        )
    if row_title:
        parts.append(f'<text class="tick" x="4" y="{top - 6}">{_esc(row_title)}</text>')
    for j, label in enumerate(col_labels):
        parts.append(
            f'<text class="tick" x="{label_w + (j + 0.5) * cell_w:.1f}" y="{top - 6}" '
            f'text-anchor="middle">{_esc(label)}</text>'
        )
    for i, label in enumerate(row_labels):
        y = top + i * cell_h
        parts.append(f'<text class="tick" x="{label_w - 6}" y="{y + 15}" text-anchor="end">{_esc(label)}</text>')
        for j in range(len(col_labels)):
            v = values[i, j]
            x = label_w + j * cell_w
            if not math.isfinite(v):
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{cell_w - 1:.1f}" height="{cell_h - 1}" fill="#f4f4f4"/>'
                )
                continue
            scale = scales[j]
            strength = min(abs(v) / scale, 1.0) if scale else 0.0
            rgb = (214, 39, 40) if v < 0 else (44, 160, 44)
            fill = "#{:02x}{:02x}{:02x}".format(*[int(255 - (255 - c) * (0.15 + 0.85 * strength)) for c in rgb])
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{cell_w - 1:.1f}" height="{cell_h - 1}" fill="{fill}">'
                f"<title>{_esc(label)} {_esc(col_labels[j])}: {_esc(fmt(v))}</title></rect>"
                f'<text class="cell" x="{x + cell_w / 2:.1f}" y="{y + 15}" text-anchor="middle">{_esc(fmt(v))}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _frame_open(chart_id: str, title: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart" id="{_esc(chart_id)}" data-chart="{_esc(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{_esc(title)}">'
        f'<text class="title" x="{MARGIN["left"]}" y="18">{_esc(title)}</text>'
    )


def _legend(entries: list[tuple[str, str]], left: int, width: int) -> str:
    if len(entries) < 2:
        return ""
    parts, x = [], width - MARGIN["right"] - 150 * len(entries)
    for name, color in entries:
        parts.append(
            f'<rect x="{x}" y="8" width="12" height="4" fill="{color}"/>'
            f'<text class="tick" x="{x + 16}" y="14">{_esc(name)}</text>'
        )
        x += 150
    return "".join(parts)


def _empty(chart_id: str, title: str, width: int, height: int) -> str:
    return _frame_open(chart_id, title, width, 60) + '<text class="tick" x="64" y="44">no data</text></svg>'

"""Line and bar charts as plain SVG, so plotting needs nothing beyond the standard library."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 40, 50
_OPEN = (
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
    'font-family="sans-serif" font-size="12">'
)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = [round(start, 10)]
    while ticks[-1] < high - step * 0.001:  # the last tick is at or above the highest value
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.2e}"


def line_chart(
    path: Path,
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    styles: Mapping[str, str] | None = None,
) -> Path:
    """One line per series; ``styles`` maps a series to a colour (several series may share one)."""
    points = [p for values in series.values() for p in values]
    xs = [math.log10(x) if log_x else x for x, _ in points] or [0.0, 1.0]
    ys = [y for _, y in points] or [0.0, 1.0]
    x_ticks = (
        _ticks(min(xs), max(xs))
        if not log_x
        else [float(v) for v in range(math.floor(min(xs)), math.ceil(max(xs)) + 1)]
    )
    y_ticks = _ticks(min(0.0, min(ys)), max(ys))
    x0, x1 = x_ticks[0], x_ticks[-1]
    y0, y1 = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        x = math.log10(x) if log_x else x
        return LEFT + (x - x0) / ((x1 - x0) or 1) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    out = [
        _OPEN,
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for tick in x_ticks:
        x = LEFT + (tick - x0) / ((x1 - x0) or 1) * plot_w
        text = _label(10**tick) if log_x else _label(tick)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{text}</text>')
    for tick in y_ticks:
        y = sy(tick)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(
        f'<text transform="translate(16 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>'
    )
    colours: dict[str, str] = {}
    for i, (name, values) in enumerate(series.items()):
        colour = (styles or {}).get(name) or PALETTE[i % len(PALETTE)]
        colours.setdefault(colour, name.split(" #")[0])
        if not values:
            continue
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.8" opacity="0.85"/>')
        if len(values) == 1:
            x, y = values[0]
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
    for i, (colour, name) in enumerate(colours.items()):
        y = TOP + 10 + 18 * i
        out.append(f'<rect x="{LEFT + plot_w + 12}" y="{y - 8}" width="14" height="4" fill="{colour}"/>')
        out.append(f'<text x="{LEFT + plot_w + 32}" y="{y - 2}">{escape(name)}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")
    return path


def bar_chart(path: Path, title: str, bars: Mapping[str, Mapping[str, float]], *, y_label: str) -> Path:
    """Grouped bars: ``bars[group][series] = value``."""
    groups = list(bars)
    names = list(dict.fromkeys(n for values in bars.values() for n in values))
    top = max([v for values in bars.values() for v in values.values()] or [1.0])
    y_ticks = _ticks(0.0, top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    y1 = y_ticks[-1] or 1
    out = [
        _OPEN,
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for tick in y_ticks:
        y = TOP + plot_h - tick / y1 * plot_h
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    group_w = plot_w / max(1, len(groups))
    bar_w = group_w * 0.8 / max(1, len(names))
    for g, group in enumerate(groups):
        gx = LEFT + g * group_w + group_w * 0.1
        for n, name in enumerate(names):
            value = bars[group].get(name, 0.0)
            h = value / y1 * plot_h
            out.append(
                f'<rect x="{gx + n * bar_w:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[n % len(PALETTE)]}"/>'
            )
        out.append(
            f'<text x="{gx + group_w * 0.4:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{escape(group)}</text>'
        )
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    out.append(
        f'<text transform="translate(16 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>'
    )
    for n, name in enumerate(names):
        y = TOP + 10 + 18 * n
        out.append(
            f'<rect x="{LEFT + plot_w + 12}" y="{y - 8}" width="14" height="8" fill="{PALETTE[n % len(PALETTE)]}"/>'
        )
        out.append(f'<text x="{LEFT + plot_w + 32}" y="{y}">{escape(name)}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")
    return path

"""The chart of one soak, as coordinates for an SVG drawn by the template (no script, no chart library).

Two panels share the time axis: above, the candidate's share of traffic over the soak (from the
shifts' INSYNC times and any rollback); below, the candidate's and live's error rate at each
sample the soak kept (``samples`` in its XCom, at most ~120, evenly spread) against the threshold
line. The rate axis always shows the threshold and every sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bluegreen_provider.ui import text

WIDTH = 720
LEFT, RIGHT = 56, 44
SHARE_TOP, SHARE_HEIGHT = 10, 44
RATE_TOP, RATE_HEIGHT = 82, 150
HEIGHT = RATE_TOP + RATE_HEIGHT + 30


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def right(self) -> float:
        return self.x + self.width


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Series:
    """One slot's error rate: a polyline per run of samples that have a rate (no requests breaks it)."""

    slot: str
    role: str  # "candidate" or "live"
    lines: tuple[tuple[Point, ...], ...]

    @property
    def points(self) -> list[Point]:
        return [p for line in self.lines for p in line]


@dataclass(frozen=True)
class SoakChart:
    width: int
    height: int
    candidate: str | None
    share_box: Box
    rate_box: Box
    max_pct: float
    threshold_pct: float | None
    threshold_y: float | None
    share_path: str
    share_label: str
    share_end: tuple[float, float, str] | None  # where the share line ends, and its value there
    clock_x: float | None
    series: tuple[Series, ...]
    x_ticks: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, str], ...]
    title: str


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value - 1e-12:
            return step * power
    return 10 * power


def _rate(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def soak_chart(
    task_id: str,
    record: Mapping[str, Any],
    *,
    threshold_pct: float | None,
    candidate: str | None,
    live: str | None,
    start_share: float | None = None,
    share_changes: Sequence[tuple[datetime, float]] = (),
) -> SoakChart | None:
    """The chart of a soak's record (its summary, or the verdict it failed with); None without samples."""
    samples = [s for s in record.get("samples") or () if isinstance(s, Mapping) and text.moment(s.get("t"))]
    if not samples:
        return None
    times = [text.moment(s["t"]) for s in samples]
    start = min(
        [t for t in (text.moment(record.get("watched_from")), text.moment(record.get("started_at"))) if t] + times
    )
    end = max([t for t in (text.moment(record.get("ended_at")), text.moment(record.get("detected_at"))) if t] + times)
    if end <= start:
        end = start + timedelta(seconds=1)
    span = (end - start).total_seconds()
    share_box = Box(LEFT, SHARE_TOP, WIDTH - LEFT - RIGHT, SHARE_HEIGHT)
    rate_box = Box(LEFT, RATE_TOP, WIDTH - LEFT - RIGHT, RATE_HEIGHT)

    def x_of(moment: datetime) -> float:
        return round(rate_box.x + rate_box.width * (moment - start).total_seconds() / span, 2)

    observed = [r for s in samples for r in (_rate(s.get("rate_pct")), _rate(s.get("live_rate_pct"))) if r is not None]
    max_pct = _nice_ceiling(max([1.25 * threshold_pct if threshold_pct else 0.0, *(1.1 * r for r in observed), 0.5]))

    def y_of(rate: float) -> float:
        return round(rate_box.bottom - rate_box.height * rate / max_pct, 2)

    series = []
    for role, key, slot in (("candidate", "rate_pct", candidate), ("live", "live_rate_pct", live)):
        lines: list[tuple[Point, ...]] = []
        current: list[Point] = []
        for sample, moment in zip(samples, times, strict=True):
            rate = _rate(sample.get(key))
            if rate is None:
                if current:
                    lines.append(tuple(current))
                current = []
                continue
            label = f"{text.clock(moment)} {slot or role} {text.pct(rate)}"
            if role == "candidate":
                label += f" ({text.count(sample.get('errors'))} errors of {text.count(sample.get('requests'))})"
            current.append(Point(x_of(moment), y_of(rate), label))
        if current:
            lines.append(tuple(current))
        if lines:
            series.append(Series(slot or role, role, tuple(lines)))

    share_path, share_label, last_share = _share_path(share_box, start, end, x_of, start_share, share_changes)
    clock_start = text.moment(record.get("started_at"))
    ticks = [(rate_box.x, text.clock(start)), (rate_box.right, text.clock(end))]
    if span >= 60:
        ticks.insert(1, (round(rate_box.x + rate_box.width / 2, 2), text.clock(start + (end - start) / 2)))
    y_ticks = [(y_of(0), "0 %"), (y_of(max_pct), text.pct(max_pct))]
    return SoakChart(
        width=WIDTH,
        height=HEIGHT,
        candidate=candidate,
        share_box=share_box,
        rate_box=rate_box,
        max_pct=max_pct,
        threshold_pct=threshold_pct,
        threshold_y=y_of(threshold_pct) if threshold_pct is not None else None,
        share_path=share_path,
        share_label=f"{candidate or 'candidate'} share of traffic{share_label}",
        share_end=(
            None
            if last_share is None
            else (
                share_box.right,
                round(share_box.bottom - share_box.height * last_share / 100, 2),
                text.pct(last_share),
            )
        ),
        clock_x=x_of(clock_start) if clock_start and start < clock_start < end else None,
        series=tuple(series),
        x_ticks=tuple(ticks),
        y_ticks=tuple(y_ticks),
        title=f"{task_id}: error rate of {candidate or 'the candidate'}"
        + (f" and {live}" if live else "")
        + (f" against the {text.pct(threshold_pct)} limit" if threshold_pct is not None else ""),
    )


def _share_path(
    box: Box,
    start: datetime,
    end: datetime,
    x_of: Any,
    start_share: float | None,
    changes: Sequence[tuple[datetime, float]],
) -> tuple[str, str, float | None]:
    """A step line of the candidate's share over [start, end], its caption and the share it ends at;
    empty when no shift recorded one."""
    before = [share for at, share in changes if at <= start]
    share = before[-1] if before else start_share
    during = [(at, s) for at, s in changes if start < at < end]
    if share is None and not during:
        return "", "", None

    def y_of(value: float) -> float:
        return round(box.bottom - box.height * value / 100, 2)

    if share is None:
        share = during[0][1]
    path = [f"M{box.x},{y_of(share)}"]
    shares = [share]
    for at, value in during:
        path.append(f"H{x_of(at)} V{y_of(value)}")
        shares.append(value)
    path.append(f"H{box.right}")
    label = " → ".join(dict.fromkeys(text.pct(s) for s in shares))
    return " ".join(path), f": {label}", shares[-1]

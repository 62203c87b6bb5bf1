"""How the view writes times, durations, shares and splits: one wording for every page and the JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def moment(value: str | datetime | None) -> datetime | None:
    """An ISO time (or datetime) as an aware UTC datetime; None for nothing or text that is no time."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        found = value
    else:
        try:
            found = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return (found if found.tzinfo else found.replace(tzinfo=UTC)).astimezone(UTC)


def clock(value: str | datetime | None) -> str:
    """``10:04:12`` (UTC): the run page's dates are in its header."""
    found = moment(value)
    return found.strftime("%H:%M:%S") if found else "-"


def when(value: str | datetime | None) -> str:
    """``2026-11-26 12:30:00`` (UTC)."""
    found = moment(value)
    return found.strftime("%Y-%m-%d %H:%M:%S") if found else "-"


def duration(seconds: float | None) -> str:
    """``4.2 s``, ``42 s``, ``5 m 00 s``, ``2 h 05 m``, ``3 d 04 h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f} s" if not seconds.is_integer() else f"{seconds:.0f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24} d {hours % 24:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} m"
    if minutes:
        return f"{minutes} m {secs:02d} s"
    return f"{secs} s"


def pct(value: Any) -> str:
    """A percentage as people read it: ``5 %``, ``0.36 %``, ``12.5 %``; ``?`` when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?"
    return f"{round(float(value), 2):g} %"


def count(value: Any) -> str:
    """A request or error count (CloudWatch sums are floats): ``312``, ``2.5``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def split(weights: Mapping[str, Any] | None, names: Mapping[str, str] | None = None) -> str:
    """``blue 90 / green 10``: weights by slot (set identifiers are named by their slot when known)."""
    if not weights:
        return "-"
    names = names or {}
    return " / ".join(f"{names.get(key, key)} {weights[key]}" for key in sorted(weights, key=lambda k: names.get(k, k)))


def share(weights: Mapping[str, Any] | None, slot: str) -> float | None:
    """The percentage of traffic ``slot`` gets from these weights; None when nothing is known."""
    if not weights:
        return None
    try:
        total = sum(max(0, int(w)) for w in weights.values())
        return 0.0 if total == 0 else 100.0 * max(0, int(weights.get(slot, 0))) / total
    except (TypeError, ValueError):
        return None

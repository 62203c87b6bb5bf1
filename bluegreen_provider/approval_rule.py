"""When a release may be promoted without a person: the auto-approval rule (``approval_mode="auto"``).

Low-risk releases should not wait a day for a click, but a rule that promotes on thin or doubtful
evidence is worse than none. So the rule is strict and reads only what the soaks recorded (each
``soak_<pct>`` task's summary XCom); every soak must satisfy all of:

1. its summary exists and its ``outcome`` is ``"clean"`` (``"no_data_passed"`` does not qualify);
2. the candidate and the live slot each saw at least ``min_requests`` requests (and at least one:
   a slot without requests has no observed rate);
3. its ``comparison`` with live was recorded and its ``result`` is not ``"fail"``;
4. the candidate's observed error rate is at most ``margin`` x live's (0 errors against 0 qualifies).

Anything else is marginal and goes to a person, with every reason it did not qualify.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

RULE_VIA = "rule"


def rule_description(min_requests: int) -> str:
    """What the rule promised, as the approval record's ``by``: shown wherever a decider is shown."""
    return (
        f"auto-approved by rule: every soak clean with >= {min_requests} requests on both slots; "
        "candidate no worse than live"
    )


def rule_record(min_requests: int, at: datetime) -> dict[str, Any]:
    """The approval decision the rule leaves: the same keys as a person's answer, ``via`` ``"rule"``."""
    return {
        "decision": "approve",
        "by": rule_description(min_requests),
        "user": None,
        "at": at.isoformat(),
        "via": RULE_VIA,
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def slot_figures(summary: Mapping[str, Any], role: str) -> Mapping[str, Any] | None:
    """One slot's ``requests``/``errors``/``rate_pct`` from a soak summary.

    Older summaries carry only the candidate's figures, at the top level; they have no live figures.
    """
    figures = summary.get(role)
    if isinstance(figures, Mapping):
        return figures
    if role == "candidate" and "requests" in summary:
        return {
            "requests": summary.get("requests"),
            "errors": summary.get("errors"),
            "rate_pct": summary.get("rate_pct"),
        }
    return None


def refusals(soaks: Mapping[str, Any], *, min_requests: int, margin: float) -> list[str]:
    """Every reason the soaks' evidence does not qualify for auto-approval; empty means it does."""
    reasons: list[str] = []
    if not soaks:
        return ["no soak evidence to judge"]
    for task_id, summary in soaks.items():
        if not isinstance(summary, Mapping):
            reasons.append(f"{task_id} left no summary")
            continue
        if summary.get("outcome") != "clean":
            reasons.append(f"{task_id} ended {summary.get('outcome') or 'without an outcome'}, not clean")
        counts: dict[str, tuple[float, float]] = {}
        for role in ("candidate", "live"):
            figures = slot_figures(summary, role)
            requests = _number(figures.get("requests")) if figures else None
            errors = _number(figures.get("errors")) if figures else None
            if requests is None or errors is None:
                reasons.append(f"{task_id} recorded no request and error counts for {role}")
            elif requests < max(min_requests, 1):
                reasons.append(f"{task_id} saw {_text(requests)} requests on {role} < {max(min_requests, 1)}")
            else:
                counts[role] = (requests, errors)
        comparison = summary.get("comparison")
        if not isinstance(comparison, Mapping) or not comparison.get("result"):
            reasons.append(f"{task_id} recorded no comparison with live")
        elif comparison["result"] == "fail":
            p_value = _number(comparison.get("p_value"))
            detail = f" (p = {p_value:.3g})" if p_value is not None else ""
            why = f": {comparison['reason']}" if comparison.get("reason") else ""
            reasons.append(f"{task_id} comparison with live failed{detail}{why}")
        if len(counts) == 2:
            (cand_requests, cand_errors), (live_requests, live_errors) = counts["candidate"], counts["live"]
            # cand_errors / cand_requests > margin * live_errors / live_requests, without dividing.
            if cand_errors * live_requests > margin * live_errors * cand_requests:
                reasons.append(
                    f"{task_id} candidate error rate {_text(100 * cand_errors / cand_requests)} % > "
                    f"{_text(margin)} x live {_text(100 * live_errors / live_requests)} %"
                )
    return reasons

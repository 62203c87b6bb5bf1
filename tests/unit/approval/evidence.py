"""Soak summaries as the ``soak_<pct>`` tasks store them, to feed the approval gate its evidence."""

from __future__ import annotations

from typing import Any

# Each marginal case differs from a clean soak in exactly one way; the reason is what the request says.
MARGINAL: dict[str, tuple[str, dict[str, Any], str]] = {
    "too few live requests": (
        "soak_50",
        {"live": {"slot": "blue", "requests": 12.0, "errors": 0.0, "rate_pct": 0.0}},
        "soak_50 saw 12 requests on live < 20",
    ),
    "no data passed": ("soak_10", {"outcome": "no_data_passed"}, "soak_10 ended no_data_passed, not clean"),
    "candidate above margin x live": (
        "soak_50",
        {
            "candidate": {"slot": "green", "requests": 400.0, "errors": 12.0, "rate_pct": 3.0},
            "live": {"slot": "blue", "requests": 3600.0, "errors": 36.0, "rate_pct": 1.0},
            "comparison": {"result": "inconclusive", "p_value": 0.06, "margin": 1.5, "alpha": 0.05, "reason": "x"},
        },
        "soak_50 candidate error rate 3 % > 1.5 x live 1 %",
    ),
    "comparison failed": (
        "soak_50",
        {
            "comparison": {
                "result": "fail",
                "p_value": 0.001,
                "margin": 1.5,
                "alpha": 0.05,
                "reason": "candidate significantly worse than 1.5 x live",
            }
        },
        "soak_50 comparison with live failed (p = 0.001): candidate significantly worse than 1.5 x live",
    ),
}


def soak(stage_pct: int, **overrides: Any) -> dict[str, Any]:
    """A clean soak: green 400 requests / 2 errors against blue 3600 / 20, comparison passed."""
    candidate = {"slot": "green", "requests": 400.0, "errors": 2.0, "rate_pct": 0.5}
    summary = {
        "outcome": "clean",
        "stage_pct": stage_pct,
        "requests": candidate["requests"],
        "errors": candidate["errors"],
        "rate_pct": candidate["rate_pct"],
        "max_rate_pct": 1.25,
        "alarms_seen": [],
        "samples": [],
        "started_at": "2026-11-26T12:00:00+00:00",
        "ended_at": "2026-11-26T12:10:00+00:00",
        "duration_s": 600.0,
        "candidate": candidate,
        "live": {"slot": "blue", "requests": 3600.0, "errors": 20.0, "rate_pct": 0.56},
        "comparison": {
            "result": "pass",
            "p_value": 0.41,
            "margin": 1.5,
            "alpha": 0.05,
            "reason": "green 0.5 % is not significantly above 1.5 x blue 0.56 %",
        },
        "judged_until": "2026-11-26T12:09:00+00:00",
    }
    summary.update(overrides)
    if "candidate" in overrides:  # the top-level figures are the candidate's
        summary.update({k: overrides["candidate"][k] for k in ("requests", "errors", "rate_pct")})
    return summary


def clean_soaks() -> dict[str, dict[str, Any]]:
    return {"soak_10": soak(10), "soak_50": soak(50)}


def marginal_soaks(case: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Clean soaks with one soak made marginal as ``case`` says, and the reason expected."""
    task_id, overrides, reason = MARGINAL[case]
    soaks = clean_soaks()
    soaks[task_id] = soak(int(task_id.removeprefix("soak_")), **overrides)
    return soaks, reason

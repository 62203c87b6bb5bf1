"""The rules of a soak: one window judged against the threshold and against live, the settings, the times."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bluegreen_provider.hooks.cloudwatch import ErrorRate, ErrorRateQuery
from bluegreen_provider.plan import Plan
from bluegreen_provider.soak import ExcusedAlarm, Soak, SoakRules, WatchedSlot, excused_alarms, judge

from .conftest import ALARM, FUNCTIONS, GREEN_ALIAS, make_spec

START = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
RULES = SoakRules(threshold_pct=5.0, min_requests=20, margin=1.5, alpha=0.05, min_errors=5)


def rate(requests: float, errors: float, min_requests: int = 20) -> ErrorRate:
    """One slot's window as the hook returns it."""
    return ErrorRate(
        requests=requests,
        errors=errors,
        rate_pct=errors / requests * 100 if requests else None,
        enough_data=requests >= min_requests,
        start=START,
        end=START + timedelta(minutes=5),
    )


# -- judge(): one window, candidate against the threshold and against live -----------------------------


def test_candidate_significantly_worse_than_live_breaks_under_the_threshold():
    # Canary volumes: 10 % of the traffic on the candidate, 90 % on live.
    found = judge(rate(1000, 30), rate(9000, 45), RULES, looks=10, names=("green", "blue"))
    assert (found.verdict, found.rule) == ("breach", "relative")
    assert found.comparison.result == "fail" and found.comparison.looks == 10
    assert found.message.startswith("green 3.0 % (30/1000) vs blue 0.5 % (45/9000): worse than 1.5x blue, p=")
    assert found.message.endswith("(12:00:00-12:05:00)")


def test_live_as_bad_as_the_candidate_is_degraded_not_a_breach():
    found = judge(rate(1000, 80), rate(9000, 720), RULES, names=("green", "blue"))
    assert (found.verdict, found.rule) == ("degraded", None)
    assert found.message.startswith("live is degraded too: green 8.0 % (80/1000) and blue 8.0 % (720/9000) are both")
    assert "the candidate is not worse than live" in found.message
    assert found.comparison.result == "pass"


def test_candidate_above_the_threshold_while_live_is_fine_breaks():
    found = judge(rate(1000, 80), rate(9000, 45), RULES, names=("green", "blue"))
    assert (found.verdict, found.rule) == ("breach", "error_rate")
    assert found.message == (
        "error rate 8.0 % > 5.0 % on green (80 errors / 1000 requests, 12:00:00-12:05:00); blue 0.5 % (45/9000)"
    )


def test_live_degraded_but_the_candidate_far_worse_is_the_candidates_breach():
    found = judge(rate(1000, 300), rate(9000, 720), RULES, names=("green", "blue"))
    assert (found.verdict, found.rule) == ("breach", "error_rate")
    assert found.comparison.result == "fail"


def test_too_few_requests_is_not_judged():
    found = judge(rate(10, 5), rate(9000, 45), RULES)
    assert (found.verdict, found.rule, found.message) == ("ok", None, "")
    assert found.comparison.result == "inconclusive"


def test_without_live_only_the_threshold_judges():
    assert judge(rate(1000, 30), None, RULES).verdict == "ok"
    found = judge(rate(1000, 80), None, RULES)
    assert (found.verdict, found.rule, found.comparison) == ("breach", "error_rate", None)
    assert found.message == "error rate 8.0 % > 5.0 % on candidate (80 errors / 1000 requests, 12:00:00-12:05:00)"


def test_the_level_is_split_over_the_looks():
    # p is about 0.004 here: one look (held to 0.05) fails it, 100 looks (each held to 0.0005) do not.
    candidate, live = rate(400, 16), rate(3600, 40)
    assert judge(candidate, live, RULES, looks=1).verdict == "breach"
    assert judge(candidate, live, RULES, looks=100).verdict == "ok"


# -- the rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"threshold_pct": 0}, "threshold_pct must be in (0, 100]"),
        ({"min_requests": -1}, "min_requests must be an int >= 0"),
        ({"min_requests": True}, "min_requests must be an int >= 0"),
        ({"window_seconds": 0}, "window_seconds must be a positive number"),
        ({"poll_interval": 0}, "poll_interval must be a positive number"),
        ({"lag_seconds": -1}, "lag_seconds must be a non-negative number"),
        ({"margin": 0.9}, "margin must be a number >= 1"),
        ({"alpha": 1}, "alpha must be in (0, 1)"),
        ({"max_consecutive_errors": 0}, "max_consecutive_errors must be an int >= 1"),
        ({"no_data_policy": "ignore"}, "no_data_policy must be 'fail' or 'pass'"),
        ({"alarms": ALARM}, "alarms must be a list of alarm names"),
    ],
)
def test_bad_rules_are_refused_with_what_is_wrong(change, problem):
    with pytest.raises(ValueError) as err:
        replace(SoakRules(), **change)
    assert problem in str(err.value)


def test_every_problem_is_named_at_once():
    with pytest.raises(ValueError) as err:
        SoakRules(threshold_pct=0, window_seconds=-5)
    assert "threshold_pct" in str(err.value) and "window_seconds" in str(err.value)


def plan_with(**spec: object) -> Plan:
    return Plan(
        spec=make_spec(**spec),
        zone_id="Z1",
        live="blue",
        candidate="green",
        owner="blue_green_deploy/manual__1",
        split_before={"blue": 100, "green": 0},
        live_versions={},
        candidate_versions_before={},
        alarms_firing=[
            {"name": ALARM, "state": "ALARM", "reason": "old", "since": "2026-11-30T11:00:00+00:00"},
            {"name": "recorded-before-episodes", "state": "ALARM", "reason": "no since"},
        ],
    )


def test_rules_come_from_the_spec_and_the_plan():
    rules = SoakRules.from_plan(
        plan_with(error_rate_threshold_pct=2.5, min_requests=50, metrics_period_seconds=60, metrics_lag_seconds=90)
    )
    assert (rules.threshold_pct, rules.min_requests, rules.period_seconds, rules.lag_seconds) == (2.5, 50, 60, 90)
    assert rules.settle_seconds == 150
    assert (rules.alarms, rules.poll_interval) == ((ALARM,), 1)
    # Only an alarm whose episode start the plan recorded is excused.
    assert rules.excused_alarms == (ExcusedAlarm(ALARM, "2026-11-30T11:00:00+00:00"),)


def test_overrides_replace_single_rules_and_unknown_ones_are_refused():
    plan = plan_with()
    rules = SoakRules.from_plan(plan, threshold_pct=1.0, window_seconds=None)
    assert (rules.threshold_pct, rules.window_seconds) == (1.0, 300)  # None keeps the spec's
    with pytest.raises(ValueError, match=r"unknown soak rules \['threshold'\]"):
        SoakRules.from_plan(plan, threshold=1.0)
    with pytest.raises(ValueError, match="excused_alarms"):
        SoakRules.from_plan(plan, excused_alarms=())  # the plan's record, never a task's choice


def test_excused_alarms_ignore_entries_without_an_episode_start():
    assert excused_alarms([{"name": "a", "since": "2026-01-01T00:00:00+00:00"}, {"name": "b"}, "c", {}]) == (
        ExcusedAlarm("a", "2026-01-01T00:00:00+00:00"),
    )


def test_a_soak_round_trips_through_json():
    query = ErrorRateQuery.lambda_aliases(list(FUNCTIONS), GREEN_ALIAS)
    rules = SoakRules.from_plan(plan_with())
    soak = Soak(
        stage_pct=10,
        candidate=WatchedSlot("green", query),
        baseline=WatchedSlot("blue", ErrorRateQuery.lambda_aliases(list(FUNCTIONS), "production-blue")),
        rules=rules,
        watch_from=START,
        soak_seconds=300,
        clock_start=START + timedelta(seconds=40),
        health_check_id="hc-1",
    )
    assert Soak.from_dict(soak.to_dict()) == soak
    propagating = replace(soak, clock_start=None, baseline=None)
    assert Soak.from_dict(propagating.to_dict()) == propagating
    assert (propagating.soak_end, propagating.verdict_at) == (None, None)


def test_soak_times_the_verdict_waits_for_settled_data():
    rules = replace(SoakRules(), period_seconds=60, lag_seconds=120, poll_interval=30)
    query = ErrorRateQuery.lambda_aliases(list(FUNCTIONS), GREEN_ALIAS)
    soak = Soak(10, WatchedSlot("green", query), None, rules, watch_from=START, soak_seconds=300)
    started = soak.started(START + timedelta(seconds=45))
    assert started.soak_end == START + timedelta(seconds=345)
    assert started.verdict_at == START + timedelta(seconds=345 + 180)
    assert started.looks == 17  # (300 + 180) / 30 + 1 looks at the comparison

"""Each stage of a run in one sentence, from the record it returned (XCom), in the order the stages ran."""

from __future__ import annotations

from bluegreen_provider.ui.timeline import RunFacts, chronological, describe_stage

PLAN = {
    "live": "blue",
    "candidate": "green",
    "split_before": {"blue-set": 100, "green-set": 0},
    "live_versions": {"lego-api-moc": "1"},
    "generation": 1,
    "warnings": ["alarm lego-api-5xx was already in ALARM before the deployment"],
    "spec": {
        "error_rate_threshold_pct": 5,
        "slots": {"blue": {"set_identifier": "blue-set"}, "green": {"set_identifier": "green-set"}},
    },
}
SHIFT_10 = {
    "split": {"blue-set": 90, "green-set": 10},
    "previous_split": {"blue-set": 100, "green-set": 0},
    "candidate_pct": 10,
    "approval": None,
    "submitted_at": "2026-11-26T10:04:12.400000+00:00",
    "insync_at": "2026-11-26T10:04:16.400000+00:00",
    "change_id": "C1",
}
SOAK_10 = {
    "stage_pct": 10,
    "requests": 312,
    "errors": 1,
    "rate_pct": 0.32,
    "max_rate_pct": 0.0,
    "alarms_seen": [],
    "live": {"slot": "blue", "requests": 2900, "errors": 6, "rate_pct": 0.21},
    "comparison": {"result": "pass", "p_value": 0.4123},
    "duration_s": 300,
    "outcome": "clean",
}
FACTS = RunFacts.from_stages([{"task_id": "plan", "summary": PLAN}, {"task_id": "shift_10", "summary": SHIFT_10}])


def said(task_id: str, summary=None, *, state="success", verdict=None, start="2026-11-26T10:00:00+00:00") -> str:
    return str(describe_stage(task_id, state=state, summary=summary, verdict=verdict, start=start, facts=FACTS))


def test_a_shift_says_when_to_which_split_and_how_long_route53_took():
    assert said("shift_10", SHIFT_10) == "10:04:12 shifted to 10 % (blue 90 / green 10), INSYNC after 4 s"


def test_a_shift_that_found_its_split_in_place_says_so():
    again = {**SHIFT_10, "submitted_at": None, "insync_at": None}
    assert said("shift_10", again) == "10:00:00 shifted to 10 % (blue 90 / green 10), already in place"


def test_a_soak_gives_its_counts_and_rate_against_the_threshold_not_its_peak():
    sentence = said("soak_10", SOAK_10, start="2026-11-26T10:04:16+00:00")

    assert sentence.startswith("10:04:16 soak 10 %: 312 requests, 0.32 % errors, limit 5 %; ")
    assert "live blue 0.21 % (6 of 2900)" in sentence
    assert "peak 0 %" in sentence and "limit 0" not in sentence
    assert sentence.endswith("against live: pass (p = 0.412); no alarm in ALARM; soaked 5 m 00 s; clean")


def test_the_soaks_own_threshold_beats_the_plans():
    breached = {
        "status": "breach",
        "rule": "error_rate",
        "message": "error rate 7.3 % > 2.5 %",
        "figures": {"threshold_pct": 2.5},
    }
    from bluegreen_provider.ui.timeline import soak_limit

    assert soak_limit(SOAK_10, breached, FACTS) == 2.5
    assert soak_limit(SOAK_10, None, FACTS) == 5
    assert soak_limit({**SOAK_10, "threshold_pct": 1}, None, FACTS) == 1
    assert "limit 1 %" in said("soak_10", {**SOAK_10, "threshold_pct": 1})


def test_a_breached_soak_says_which_rule_and_the_verdict():
    verdict = {"status": "breach", "rule": "relative", "message": "green is worse than 1.5x blue (p = 0.001)"}

    assert said("soak_50", state="failed", verdict=verdict) == (
        "10:00:00 soak 50 % breached (worse than live): green is worse than 1.5x blue (p = 0.001)"
    )
    held = {"status": "degraded", "message": "live is degraded too"}
    assert said("soak_50", state="skipped", verdict=held) == "10:00:00 soak 50 % held: live is degraded too"


def test_the_plan_names_the_live_slot_and_keeps_its_warnings():
    found = describe_stage("plan", state="success", summary=PLAN, start="2026-11-26T10:00:00+00:00", facts=FACTS)

    assert str(found) == "10:00:00 planned: blue is live, green takes the release; traffic blue 100 / green 0"
    assert found.notes == ("warning: alarm lego-api-5xx was already in ALARM before the deployment",)


def test_the_approval_says_who_decided_at_the_time_they_did():
    person = {"decision": "approve", "by": "Ada Oncall", "at": "2026-11-26T12:30:00+00:00", "via": "response"}
    rule = {
        "decision": "approve",
        "by": "auto-approved by rule: every soak clean",
        "at": "2026-11-26T12:31:00+00:00",
        "via": "rule",
    }
    timeout = {"decision": "reject", "by": None, "at": "2026-11-27T12:30:00+00:00", "via": "timeout"}

    assert said("approval", person) == "12:30:00 approved by Ada Oncall via response"
    assert said("approval", rule) == "12:31:00 auto-approved by rule: every soak clean"
    assert said("approval", timeout) == "12:30:00 rejected: no answer in time (approval timed out)"


def test_the_promotion_names_the_approval_and_the_retained_slot():
    promotion = {
        **SHIFT_10,
        "split": {"blue-set": 0, "green-set": 100},
        "candidate_pct": 100,
        "approval": {"decision": "approve", "by": "Ada Oncall", "via": "response"},
        "retain_until": "2026-11-27T12:31:00+00:00",
    }

    assert said("shift_100", promotion) == (
        "10:04:12 promoted green to 100 % (blue 0 / green 100), INSYNC after 4 s; approved by Ada Oncall via "
        "response; blue kept until 2026-11-27 12:31:00 UTC for emergency rollback"
    )


def test_release_health_rollback_and_teardown():
    deploy = {
        "slot": "green",
        "alias": "production-green",
        "versions": {"b": {"version": "3", "reused": False}, "a": {"version": "1", "reused": True}},
    }
    health = {
        "route53_health_check_id": "hc-1",
        "route53_status": "healthy",
        "probe": {"url": "http://x/green/health", "attempts": 3, "successes": 3, "last_status": 200, "duration_s": 1.5},
    }
    rollback = {
        "action": "rolled_back",
        "split_before": {"blue-set": 90, "green-set": 10},
        "split_after": {"blue-set": 100, "green-set": 0},
        "live": "blue",
        "reason": "rollback task after soak_10",
    }

    assert said("deploy_green", deploy) == "10:00:00 released into green (production-green): a v1 (reused), b v3 (new)"
    assert said("health_check", health) == (
        "10:00:00 health probe of http://x/green/health: 3 consecutive answers (last HTTP 200) in 3 tries, 1.5 s; "
        "Route53 health check hc-1 healthy"
    )
    assert said("rollback", rollback) == (
        "10:00:00 rolled back to blue: blue 100 / green 0 (was blue 90 / green 10): rollback task after soak_10"
    )
    assert said("rollback", {"action": "nothing", "reason": "the plan did not complete"}) == (
        "10:00:00 nothing to roll back: the plan did not complete"
    )
    assert said(
        "teardown_blue", {"action": "retired", "slot": "blue", "health_check_deleted": "hc-0", "pruned": []}
    ) == ("10:00:00 retired blue; deleted health check hc-0")


def test_a_record_no_sentence_knows_is_written_in_full():
    record = {"note": "x" * 300, "count": 3, "nested": {"a": [1, 2]}}

    assert said("custom_step", record) == f'10:00:00 note: {"x" * 300}; count: 3; nested: {{"a": [1, 2]}}'


def test_a_stage_without_a_record_says_its_state():
    assert said("approval", state="awaiting_input") == "10:00:00 waiting for a person's answer"
    assert said("soak_10", state="deferred") == "10:00:00 waiting in the triggerer"
    assert said("teardown_blue", state=None, start=None) == "not started"


def test_stages_are_in_the_order_they_started_and_those_not_started_follow_in_story_order():
    stages = [
        {"task_id": "teardown_blue", "start_date": None},
        {"task_id": "soak_10", "start_date": "2026-11-26T10:05:00+00:00"},
        {"task_id": "plan", "start_date": "2026-11-26T10:00:00+00:00"},
        # shift_10 cleared and run again after its soak had started: it ran later, so it reads later
        {"task_id": "shift_10", "start_date": "2026-11-26T10:09:00+00:00"},
        {"task_id": "rollback", "start_date": "2026-11-26T10:01:00+00:00", "ran": False},  # skipped, stamped
        {"task_id": "shift_100", "start_date": None},
        {"task_id": "deploy_green", "start_date": "2026-11-26T10:01:00+00:00"},
    ]

    assert [s["task_id"] for s in chronological(stages)] == [
        "plan",
        "deploy_green",
        "soak_10",
        "shift_10",
        "shift_100",
        "teardown_blue",
        "rollback",
    ]

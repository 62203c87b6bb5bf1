"""Each deployment event in words: one short message with the figures a person acts on."""

from __future__ import annotations

import pytest

from bluegreen_provider.notifications import MESSAGES, TITLES, About, compose
from bluegreen_provider.spec import NOTIFICATION_EVENTS

RUN = "blue_green_deploy/manual__2026-01-01T10:00:00"
ABOUT = About("lego-api", RUN, live="blue", candidate="green", set_names={"blue": "blue", "green": "green"})
ROLLBACK = "trigger the bluegreen_rollback DAG or run `bluegreen rollback --service lego-api`"


def split(blue: int, green: int) -> dict[str, int]:
    return {"blue": blue, "green": green}


def test_every_configurable_event_has_a_message_and_a_title():
    assert set(MESSAGES) == set(TITLES) == set(NOTIFICATION_EVENTS)


def test_approval_needed_links_the_required_actions_page_and_says_who_may_answer():
    link = "http://airflow.example.com/dags/blue_green_deploy/runs/r1/tasks/approval/required_actions?map_index=-1"
    notice = compose(
        "approval_needed",
        ABOUT,
        split=split(50, 50),
        link=link,
        deadline="2026-01-02T10:00:00+00:00",
        policy="hold",
        approvers=["Alice", "Bob"],
    )
    assert notice.subject == "lego-api: approval needed"
    assert notice.text == (
        "lego-api: approval needed to promote green to 100 % (traffic blue 50 / green 50). Answer by "
        "2026-01-02 10:00:00 UTC, else the split is held. Who may answer: Alice, Bob. Approve or reject: "
        f"{link} Run: {RUN}."
    )


def test_approval_needed_after_auto_approval_refused_says_why_and_what_a_timeout_does():
    text = compose(
        "approval_needed",
        ABOUT,
        split=split(50, 50),
        link="/dags/d/runs/r/tasks/approval/required_actions?map_index=-1",
        deadline=None,
        policy="rollback",
        not_auto_approved=["soak_50 saw 12 requests on live < 20"],
    ).text
    assert "Not auto-approved: soak_50 saw 12 requests on live < 20. No deadline." in text
    assert "Who may answer" not in text

    timed = compose("approval_needed", ABOUT, split=split(50, 50), deadline="2026-01-02T10:00:00Z", policy="rollback")
    assert "Answer by 2026-01-02 10:00:00 UTC, else the deployment rolls back." in timed.text


def test_shifted_gives_the_split_before_and_after():
    notice = compose("shifted", ABOUT, pct=10, before=split(100, 0), after=split(90, 10))
    assert notice.text == (
        f"lego-api: green now takes 10 % of traffic (blue 100 / green 0 → blue 90 / green 10). Run: {RUN}."
    )
    again = compose("shifted", ABOUT, pct=10, before=split(90, 10), after=split(90, 10))
    assert "(blue 90 / green 10, already in place)" in again.text


def test_held_says_why_where_and_the_ways_forward():
    rejected = compose("held", ABOUT, split=split(50, 50), why="rejected by alice at 2026-01-01 10:05:00 UTC")
    assert rejected.text == (
        "lego-api: HELD at blue 50 / green 50: rejected by alice at 2026-01-01 10:05:00 UTC. Traffic stays split. "
        f"To promote: clear 'approval' with its downstream tasks and approve; to roll back: {ROLLBACK}. Run: {RUN}."
    )
    by_soak = compose("held", ABOUT, split=split(90, 10), why="live is degraded too", by_soak=True)
    assert "When live recovers, clear the soak to watch again; to roll back:" in by_soak.text


def test_rolled_back_says_what_broke_with_the_figures():
    cause = (
        "soak_10 failed (error_rate): error rate 31.0 % > 5.0 % on green (25 errors / 80 requests, "
        "10:00:01-10:00:05); blue 0.0 % (0/300)"
    )
    notice = compose("rolled_back", ABOUT, failed=["soak_10"], cause=cause, split=split(100, 0))
    assert notice.subject == "lego-api: rolled back"
    assert notice.text == f"lego-api: ROLLED BACK to blue: {cause}. Traffic now blue 100 / green 0. Run: {RUN}."


def test_rolled_back_without_a_cause_names_the_stages_and_warns_about_live():
    notice = compose(
        "rolled_back",
        ABOUT,
        failed=["health_check"],
        split=split(100, 0),
        warning="live slot blue is unhealthy too: its health URL answered 503",
    )
    assert notice.text.startswith("lego-api: ROLLED BACK to blue: health_check failed. Traffic now blue 100 / green 0.")
    assert "WARNING: live slot blue is unhealthy too: its health URL answered 503; a person must look at blue." in (
        notice.text
    )
    ended = compose("rolled_back", ABOUT, split=split(100, 0))
    assert "ROLLED BACK to blue: the run ended unfinished." in ended.text


def test_rolled_back_cuts_a_huge_cause_to_one_readable_line():
    text = compose("rolled_back", ABOUT, cause="boom\n" * 1000, split=split(100, 0)).text
    assert "\n" not in text and len(text) < 800 and "…" in text


def test_promoted_says_who_approved_and_what_is_retained():
    approval = {"decision": "approve", "by": "alice", "at": "2026-01-01T10:06:00+00:00", "via": "response"}
    notice = compose(
        "promoted",
        ABOUT,
        split=split(0, 100),
        approval=approval,
        retained_slot="blue",
        retain_until="2026-01-02T10:06:00+00:00",
    )
    assert notice.text == (
        "lego-api: PROMOTED green to 100 % (blue 0 / green 100), approved by alice at 2026-01-01 10:06:00 UTC. "
        f"blue keeps the previous release until 2026-01-02 10:06:00 UTC for an emergency rollback ({ROLLBACK}). "
        f"Run: {RUN}."
    )


@pytest.mark.parametrize(
    ("approval", "said"),
    [
        ({"via": "rule", "by": "auto-approved by rule: every soak clean"}, "auto-approved by rule: every soak clean"),
        ({"via": "marked success in the UI (no response recorded)"}, "marked success in the UI"),
        (None, "no approval step"),
    ],
)
def test_promoted_says_how_it_was_decided(approval, said):
    text = compose("promoted", ABOUT, split=split(0, 100), approval=approval, retained_slot=None).text
    assert f"(blue 0 / green 100), {said}" in text and "Nothing is retained." in text


def test_torn_down_counts_what_was_cleaned_up():
    notice = compose(
        "torn_down", ABOUT, action="retired", slot="blue", health_check_deleted="hc-1", pruned={"f": ["2", "3"]}
    )
    assert notice.text == (
        "lego-api: retention over, slot blue retired (health check hc-1 deleted, 2 unused Lambda versions pruned); "
        f"green stays live. Run: {RUN}."
    )


def test_post_promotion_rollback_and_breach():
    back = compose(
        "post_promotion_rollback",
        ABOUT,
        cause="alarm after promotion: alarm lego-api-moc-errors in ALARM: 3 errors",
        live="blue",
        split=split(100, 0),
    )
    assert back.text == (
        "lego-api: POST-PROMOTION ROLLBACK: alarm after promotion: alarm lego-api-moc-errors in ALARM: 3 errors. "
        f"Traffic is back on the retained slot blue (blue 100 / green 0). Run: {RUN}."
    )
    kept = compose(
        "post_promotion_breach", ABOUT, cause="error_rate after promotion: error rate 9.0 %", policy="notify"
    )
    assert kept.text == (
        "lego-api: POST-PROMOTION BREACH: error_rate after promotion: error rate 9.0 %. Not rolled back "
        f"(post_promotion_policy=notify): to go back, {ROLLBACK}. Run: {RUN}."
    )


def test_overdue_says_how_long_since_it_was_queued_and_where_it_stands():
    notice = compose(
        "overdue",
        ABOUT,
        after_seconds=1800,
        queued_at="2026-01-01T10:00:00Z",
        phase="shifting",
        split=split(50, 50),
        triggered_by="alice",
    )
    assert notice.subject == "lego-api: deployment overdue"
    assert notice.text == (
        "lego-api: deployment OVERDUE: 30m after it was queued by alice at 2026-01-01 10:00:00 UTC it has neither "
        f"promoted nor rolled back; it is shifting at blue 50 / green 50. Run: {RUN}."
    )


@pytest.mark.parametrize("event", NOTIFICATION_EVENTS)
def test_every_message_is_one_line_and_its_sns_subject_under_100_characters(event):
    longest = About("s" * 64, RUN, "blue", "green")  # the longest service name the spec takes
    notice = compose(event, longest, pct=10, slot="blue", cause="x\ny", after_seconds=60, split=split(50, 50))
    assert len(notice.subject) < 100 and notice.subject.isascii()
    assert "\n" not in notice.text and notice.text.endswith(f"Run: {RUN}.")

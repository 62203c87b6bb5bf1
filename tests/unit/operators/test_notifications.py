"""The stages tell people what they did: each sends its event through SNS (moto) once its change is done,
and a notifier that fails never fails the stage."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bluegreen_provider.notifications import deployment_overdue
from bluegreen_provider.state import Phase, rollback

from .conftest import REGION

ROLLBACK = "trigger the bluegreen_rollback DAG or run `bluegreen rollback --service lego-api`"
BREACH = {
    "status": "breach",
    "rule": "error_rate",
    "message": "error rate 31.0 % > 5.0 % on green (25 errors / 80 requests, 10:00:01-10:00:05); blue 0.0 % (0/300)",
    "figures": {"rate_pct": 31.0, "threshold_pct": 5},
    "detected_at": "2026-01-01T10:00:05+00:00",
}


class Inbox:
    """An SNS topic in moto with an SQS queue subscribed; ``texts()`` drains what SNS delivered."""

    def __init__(self) -> None:
        sns, self.sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        self.arn = sns.create_topic(Name="deployments")["TopicArn"]
        self.url = self.sqs.create_queue(QueueName="deployments")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]
        sns.subscribe(TopicArn=self.arn, Protocol="sqs", Endpoint=queue_arn["QueueArn"])

    def envelopes(self) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
        for m in got:
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in got]

    def texts(self, event: str | None = None) -> list[str]:
        return [
            e["Message"] for e in self.envelopes() if event is None or e["MessageAttributes"]["event"]["Value"] == event
        ]


@pytest.fixture
def inbox(world) -> Inbox:
    return Inbox()


def spec(world, inbox, **overrides: Any) -> dict[str, Any]:
    return world.spec(notifications={"sns": {"target_arn": inbox.arn}}, **overrides)


def test_each_shift_says_where_traffic_went_and_the_promotion_who_approved(world, new_run, stages, inbox):
    run = new_run("run1")
    stages.release(run, spec(world, inbox, retention_seconds=3600), upto=(10, 50))
    assert inbox.texts() == [
        "lego-api: green now takes 10 % of traffic (blue 100 / green 0 → blue 90 / green 10). Run: bluegreen_deploy/"
        "run1.",
        "lego-api: green now takes 50 % of traffic (blue 90 / green 10 → blue 50 / green 50). Run: bluegreen_deploy/"
        "run1.",
    ]

    run.put("approval", {"decision": "approve", "by": "alice", "at": "2026-01-01T10:06:00+00:00", "via": "response"})
    run.execute(stages.shift(100, approval_task_id="approval"))
    until = datetime.fromisoformat(world.state().retained.until).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert inbox.texts() == [
        "lego-api: PROMOTED green to 100 % (blue 0 / green 100), approved by alice at 2026-01-01 10:06:00 UTC. blue "
        f"keeps the previous release until {until} for an emergency rollback ({ROLLBACK}). Run: bluegreen_deploy/run1."
    ]


def test_rollback_after_a_failed_soak_says_what_broke(world, new_run, stages, inbox, task_states):
    run = new_run("run1")
    stages.release(run, spec(world, inbox), upto=(10,))
    inbox.envelopes()
    # The soak failed and pushed its verdict; its failure callback already restored blue.
    run.put("soak_10", BREACH, key="verdict")
    rollback(world.service(), run.owner, "soak_10 failed: soak at 10 % breached (error_rate): …")
    task_states.update({"shift_10": "success", "soak_10": "failed", "shift_50": "upstream_failed"})

    result = run.execute(stages.rollback())

    assert result["action"] == "nothing" and result["split_now"] == {"blue": 100, "green": 0}
    assert inbox.texts("rolled_back") == [
        f"lego-api: ROLLED BACK to blue: soak_10 failed (error_rate): {BREACH['message']}. Traffic now blue 100 / "
        "green 0. Run: bluegreen_deploy/run1."
    ]


def test_rollback_without_a_verdict_quotes_the_state_reason(world, new_run, stages, inbox, task_states):
    run = new_run("run1")
    stages.release(run, spec(world, inbox), upto=(10,))
    inbox.envelopes()
    task_states.update({"shift_10": "success", "soak_10": "failed"})
    run.execute(stages.rollback())  # the rollback task restores traffic itself
    assert inbox.texts() == [
        "lego-api: ROLLED BACK to blue: rollback task after soak_10. Traffic now blue 100 / green 0. "
        "Run: bluegreen_deploy/run1."
    ]


def test_the_emergency_rollback_says_who_pressed_it_and_where_traffic_is(world, new_run, stages, inbox):
    from bluegreen_provider.operators.rollback import ManualRollbackOperator

    raw = spec(world, inbox)
    stages.release(new_run("run1"), raw, upto=(10, 50))
    inbox.envelopes()
    button = new_run("manual__1", dag_id="bluegreen_rollback")
    button.dag_run.triggering_user_name = "alice"
    button.execute(ManualRollbackOperator(task_id="rollback", spec=raw))
    assert inbox.texts("rolled_back") == [
        "lego-api: ROLLED BACK to blue: emergency rollback pressed by alice (bluegreen_rollback/manual__1). "
        "Traffic now blue 100 / green 0. Run: bluegreen_rollback/manual__1."
    ]

    with pytest.raises(AirflowFailException, match="nothing to roll back"):
        button.execute(ManualRollbackOperator(task_id="rollback", spec=raw))  # a second press changes nothing
    assert inbox.texts() == []


def test_a_run_that_succeeded_sends_no_rollback(world, new_run, stages, inbox, task_states):
    run = new_run("run1")
    stages.release(run, spec(world, inbox, retention_seconds=0), upto=(10, 50, 100))
    inbox.envelopes()
    task_states.update({"shift_100": "success"})
    assert run.execute(stages.rollback())["action"] == "nothing"
    assert inbox.texts() == []


def test_teardown_and_the_post_promotion_rollback_are_told(world, new_run, stages, inbox, clock):
    run = new_run("run1")
    stages.release(run, spec(world, inbox, retention_seconds=3600, keep_versions=0), upto=(10, 50, 100))
    op = stages.teardown()
    with pytest.raises(TaskDeferred):
        run.execute(op)
    inbox.envelopes()
    with pytest.raises(AirflowFailException, match="POST-PROMOTION ROLLBACK"):
        op.guard_complete(run.context(op), {**BREACH, "rule": "alarm", "message": "alarm lego-api-5xx in ALARM"})
    assert inbox.texts() == [
        "lego-api: POST-PROMOTION ROLLBACK: alarm after promotion: alarm lego-api-5xx in ALARM. Traffic is back on "
        "the retained slot blue (blue 100 / green 0). Run: bluegreen_deploy/run1."
    ]

    second = new_run("run2")
    stages.release(second, spec(world, inbox, retention_seconds=3600, keep_versions=0), upto=(10, 50, 100))
    inbox.envelopes()
    clock(3601)
    assert second.execute(stages.teardown())["action"] == "retired"
    [text] = inbox.texts()
    # Blue was live again after the first run's rollback, so the second released into green again.
    assert text == (
        "lego-api: retention over, slot blue retired (no health check to delete, 0 unused Lambda versions pruned); "
        "green stays live. Run: bluegreen_deploy/run2."
    )


def test_a_breach_after_promotion_under_policy_notify_is_sent(world, new_run, stages, inbox):
    run = new_run("run1")
    stages.release(run, spec(world, inbox, retention_seconds=3600, post_promotion_policy="notify"), upto=(10, 50, 100))
    op = stages.teardown()
    with pytest.raises(TaskDeferred):
        run.execute(op)
    inbox.envelopes()
    with pytest.raises(AirflowFailException, match="Not rolling back"):
        op.guard_complete(run.context(op), BREACH)
    assert inbox.texts() == [
        f"lego-api: POST-PROMOTION BREACH: error_rate after promotion: {BREACH['message']}. Not rolled back "
        f"(post_promotion_policy=notify): to go back, {ROLLBACK}. Run: bluegreen_deploy/run1."
    ]
    assert world.state().phase == Phase.RETAINED


def test_a_failing_notifier_never_fails_the_stage(world, new_run, stages, caplog):
    run = new_run("run1")
    gone = world.spec(notifications={"sns": {"target_arn": "arn:aws:sns:us-east-1:123456789012:gone"}})
    with caplog.at_level(logging.WARNING, logger="bluegreen_provider.notifications"):
        stages.release(run, gone, upto=(10,))
    assert world.split() == {"blue": 90, "green": 10}
    assert run.xcom("shift_10")["split"] == {"blue": 90, "green": 10}
    assert "Notification 'shifted' to sns failed (NotFoundException" in caplog.text


def overdue(world, run, raw_spec: dict[str, Any]) -> list[str]:
    """The Deadline Alert's callback as the triggerer calls it, with the context the scheduler sends."""
    context = {
        "dag_run": {"dag_id": run.dag_id, "dag_run_id": run.run_id, "queued_at": "2026-01-01T10:00:00Z"},
        "deadline": {"id": "d1", "deadline_time": "2026-01-01T10:30:00Z"},
    }
    return asyncio.run(deployment_overdue(spec=raw_spec, aws_conn_id=None, region_name=None, context=context))


def test_overdue_goes_out_only_while_the_deployment_is_in_progress(world, new_run, stages, inbox):
    run = new_run("run1")
    raw = spec(world, inbox, retention_seconds=3600)
    stages.release(run, raw, upto=(10, 50))
    inbox.envelopes()

    assert overdue(world, run, raw) == ["sns"]
    assert inbox.texts() == [
        "lego-api: deployment OVERDUE: 30m after it was queued at 2026-01-01 10:00:00 UTC it has neither promoted "
        "nor rolled back; it is shifting at blue 50 / green 50. Run: bluegreen_deploy/run1."
    ]

    run.execute(stages.shift(100))  # promoted: the run goes on only to guard the retention
    inbox.envelopes()
    assert overdue(world, run, raw) == []
    assert overdue(world, new_run("run9"), raw) == []  # not the run that owns the service
    assert inbox.texts() == []

"""The approval request through HITL's own ``notifiers``: the message carries the Required Actions link and
who may answer; a notifier that fails never stops the request; a hold is told too."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskAwaitingInput

from bluegreen_provider.notifications import ApprovalNotifier
from bluegreen_provider.spec import NotificationSpec, SnsTarget

from .conftest import REGION
from .test_approval_unit import FakeTI, build_dag, hold_ti

APPROVERS = [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}]
LINK = "https://airflow.example.com/dags/deploy/runs/manual__1/tasks/approval/required_actions?map_index=-1"


@pytest.fixture
def queue(world):
    """An SNS topic in moto with an SQS queue subscribed; returns (topic ARN, drain())."""
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    arn = sns.create_topic(Name="deployments")["TopicArn"]
    url = sqs.create_queue(QueueName="deployments")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)

    def drain() -> list[str]:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"])["Message"] for m in got]

    return arn, drain


class RunningTI(FakeTI):
    """As in a running task: what it pushed, it pulls back (the notifier reads the request this way)."""

    def xcom_pull(self, task_ids: str, key: str = "return_value", **_):
        if task_ids == "approval" and key in self.pushed:
            return self.pushed[key]
        return super().xcom_pull(task_ids, key)


def approval_context(dag, ti: FakeTI) -> dict:
    """The context HITL hands its notifiers: the task, and a task instance that knows where it is."""
    ti.task_id, ti.dag_id, ti.run_id = "approval", "deploy", "manual__1"
    run = SimpleNamespace(dag_id="deploy", run_id="manual__1")
    return {"ti": ti, "task_instance": ti, "task": dag.get_task("approval"), "dag_run": run}


def settings(arn: str) -> NotificationSpec:
    return NotificationSpec(sns=SnsTarget(target_arn=arn))


def test_request_is_sent_with_the_required_actions_link_and_the_approvers(world, upsert, queue, monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    arn, drain = queue
    dag = build_dag(notifiers=[ApprovalNotifier(settings(arn))], assigned_users=APPROVERS)
    ti = RunningTI({("plan", "return_value"): world.plan()})

    with pytest.raises(TaskAwaitingInput):
        dag.get_task("approval").execute(approval_context(dag, ti))

    assert upsert.call_args.kwargs["assigned_users"] == APPROVERS  # only they may answer (HITL's 403)
    deadline = ti.pushed["request"]["deadline"]
    [text] = drain()
    assert text == (
        "lego-api: approval needed to promote green to 100 % (traffic blue 50 / green 50). Answer by "
        f"{deadline[:10]} {deadline[11:19]} UTC, else the split is held. Who may answer: Alice, Bob. Approve or "
        f"reject: {LINK} Run: deploy/manual__1."
    )


def test_without_a_base_url_the_link_is_the_page_path(world, upsert, queue, monkeypatch):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    arn, drain = queue
    dag = build_dag(notifiers=[ApprovalNotifier(settings(arn))])
    ti = RunningTI({("plan", "return_value"): world.plan()})
    with pytest.raises(TaskAwaitingInput):
        dag.get_task("approval").execute(approval_context(dag, ti))
    [text] = drain()
    assert (
        "Approve or reject: /dags/deploy/runs/manual__1/tasks/approval/required_actions?map_index=-1 "
        "(set [api] base_url for a full link)"
    ) in text
    assert "Who may answer" not in text


def test_a_failing_notifier_still_parks_the_request(world, upsert):
    dag = build_dag(notifiers=[ApprovalNotifier(settings("arn:aws:sns:us-east-1:123456789012:gone"))])
    ti = RunningTI({("plan", "return_value"): world.plan()})
    with pytest.raises(TaskAwaitingInput):
        dag.get_task("approval").execute(approval_context(dag, ti))
    upsert.assert_called_once()


def test_a_rejection_holds_and_says_who_rejected(world, queue):
    arn, drain = queue
    world.deployed_to_50("deploy/manual__1")
    record = {"decision": "reject", "by": "alice", "at": "2026-11-26T12:03:04+00:00", "via": "response"}
    ti = hold_ti(world, record)
    ti.xcoms[("plan", "return_value")] = world.plan(notifications={"sns": {"target_arn": arn}})
    with pytest.raises(AirflowFailException, match="HELD at blue 50 / green 50"):
        build_dag().get_task("hold").execute(
            {"ti": ti, "dag_run": SimpleNamespace(dag_id="deploy", run_id="manual__1")}
        )
    assert drain() == [
        "lego-api: HELD at blue 50 / green 50: rejected by alice at 2026-11-26 12:03:04 UTC. Traffic stays split. "
        "To promote: clear 'approval' with its downstream tasks and approve; to roll back: trigger the "
        "bluegreen_rollback DAG or run `bluegreen rollback --service lego-api`. Run: deploy/manual__1."
    ]

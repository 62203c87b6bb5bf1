"""Sending for real: the amazon provider's SnsNotifier to a moto topic read back from its SQS queue, the
Slack provider's webhook notifier to a receiver on 127.0.0.1, and a failing target never raising."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from bluegreen_provider.notifications import About, compose, notify, send
from bluegreen_provider.plan import Plan
from bluegreen_provider.spec import DeploymentSpec

from .conftest import SLACK_CONN, SLACK_TOKEN, SNS_CONN, aws_connection

RUN_ID = "manual__2026-01-01T10:00:00"
RUN = f"blue_green_deploy/{RUN_ID}"
CONTEXT = {"dag_run": SimpleNamespace(dag_id="blue_green_deploy", run_id=RUN_ID)}


def plan(**notifications: Any) -> Plan:
    spec = DeploymentSpec.from_dict(
        {
            "service": "lego-api",
            "hosted_zone": "lego-mocs.com",
            "record_name": "api.lego-mocs.com",
            "functions": [{"name": "lego-api-moc", "version": "3"}],
            "notifications": notifications,
        }
    )
    return Plan(spec, "Z1", "blue", "green", RUN, {"blue": 100, "green": 0}, {}, {})


def sns(target_arn: str) -> dict[str, Any]:
    return {"sns": {"target_arn": target_arn, "aws_conn_id": SNS_CONN}}


SLACK = {"slack": {"slack_webhook_conn_id": SLACK_CONN}}
VERDICT = "soak_10 failed (error_rate): error rate 31.0 % > 5.0 % on green (25 errors / 80 requests)"


def test_sns_notifier_delivers_the_message_to_the_subscribed_queue(topic):
    delivered = notify(CONTEXT, plan(**sns(topic.arn)), "rolled_back", cause=VERDICT, split={"blue": 100, "green": 0})

    assert delivered == ["sns"]
    [envelope] = topic.messages()
    assert envelope["TopicArn"] == topic.arn
    assert envelope["Subject"] == "lego-api: rolled back"
    assert envelope["Message"] == (
        f"lego-api: ROLLED BACK to blue: {VERDICT}. Traffic now blue 100 / green 0. Run: {RUN}."
    )
    # Subscribers can filter on the event and the service.
    assert {k: v["Value"] for k, v in envelope["MessageAttributes"].items()} == {
        "event": "rolled_back",
        "service": "lego-api",
    }


def test_only_the_configured_events_are_sent(topic):
    p = plan(**sns(topic.arn), events=["rolled_back"])
    assert (
        notify(CONTEXT, p, "shifted", pct=10, before={"blue": 100, "green": 0}, after={"blue": 90, "green": 10}) == []
    )
    assert topic.messages() == []


def test_a_spec_without_notifications_sends_nothing():
    spec = DeploymentSpec.from_dict(
        {
            "service": "lego-api",
            "hosted_zone": "z.com",
            "record_name": "a.z.com",
            "functions": [{"name": "f", "version": "1"}],
        }
    )
    quiet = Plan(spec, "Z1", "blue", "green", RUN, {}, {}, {})
    assert notify(CONTEXT, quiet, "rolled_back", cause="x") == []


def test_slack_webhook_notifier_posts_the_text_to_the_webhook(slack_webhook):
    delivered = notify(
        CONTEXT, plan(**SLACK), "shifted", pct=10, before={"blue": 100, "green": 0}, after={"blue": 90, "green": 10}
    )

    assert delivered == ["slack"]
    [(path, payload)] = slack_webhook.posts
    assert path == f"/{SLACK_TOKEN}"
    assert payload == {
        "text": f"lego-api: green now takes 10 % of traffic (blue 100 / green 0 → blue 90 / green 10). Run: {RUN}."
    }


def test_both_targets_get_the_same_message(topic, slack_webhook):
    notice = compose("held", About("lego-api", RUN, "blue", "green"), split={"blue": 50, "green": 50}, why="rejected")
    assert send(plan(**sns(topic.arn), **SLACK).spec.notifications, notice) == ["sns", "slack"]
    assert [m["Message"] for m in topic.messages()] == [notice.text]
    assert [body["text"] for _, body in slack_webhook.posts] == [notice.text]


def test_a_failing_target_is_a_warning_and_the_others_still_get_it(topic, slack_webhook, caplog):
    slack_webhook.status = 500  # Slack is having a bad day
    notice = compose("promoted", About("lego-api", RUN, "blue", "green"), split={"blue": 0, "green": 100})

    with caplog.at_level(logging.WARNING, logger="bluegreen_provider.notifications"):
        delivered = send(plan(**SLACK, **sns(topic.arn)).spec.notifications, notice)

    assert delivered == ["sns"]
    assert len(slack_webhook.posts) == 1, "the webhook was called, and refused"
    assert [m["Message"] for m in topic.messages()] == [notice.text]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("Notification 'promoted' to slack failed (AirflowException: ")
    assert warning.endswith("the deployment goes on")


@pytest.mark.parametrize("case", ["unreachable endpoint", "no such topic", "no such connection"])
def test_an_unreachable_sns_never_raises(case, moto_server, monkeypatch, caplog):
    arn = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    conn = SNS_CONN
    if case == "unreachable endpoint":
        monkeypatch.setenv(f"AIRFLOW_CONN_{SNS_CONN.upper()}", aws_connection("http://127.0.0.1:9"))
    elif case == "no such topic":
        monkeypatch.setenv(f"AIRFLOW_CONN_{SNS_CONN.upper()}", aws_connection(moto_server))
    else:
        conn = "nobody_defined_this"
    p = plan(sns={"target_arn": arn, "aws_conn_id": conn})

    with caplog.at_level(logging.WARNING, logger="bluegreen_provider.notifications"):
        assert notify(CONTEXT, p, "rolled_back", cause=VERDICT, split={"blue": 100, "green": 0}) == []
    assert any("Notification 'rolled_back' to sns failed" in r.getMessage() for r in caplog.records)


def test_a_message_that_cannot_be_written_is_a_warning_not_an_error(topic, caplog):
    with caplog.at_level(logging.WARNING, logger="bluegreen_provider.notifications"):
        assert notify(CONTEXT, plan(**sns(topic.arn)), "shifted") == []  # no pct: a caller's mistake
    assert topic.messages() == []
    assert "Notification 'shifted' not sent: its message could not be written" in caplog.text


def test_message_text_is_sent_as_written_never_rendered_as_a_template(topic):
    """A label or an alarm reason with Jinja in it reaches people as text, not as the run's secrets."""
    cause = "release {{ conn.aws_default.password }} broke"
    notify(CONTEXT, plan(**sns(topic.arn)), "rolled_back", cause=cause, split={"blue": 100, "green": 0})
    [envelope] = topic.messages()
    assert "release {{ conn.aws_default.password }} broke" in envelope["Message"]

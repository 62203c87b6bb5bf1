"""The service config's ``notifications`` and ``assigned_users``: one settings object, every problem named
when the DAG file is parsed, and a round trip through the plan's XCom unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bluegreen_provider.spec import (
    DEFAULT_OVERDUE_SECONDS,
    NOTIFICATION_EVENTS,
    DeploymentSpec,
    NotificationSpec,
    SlackTarget,
    SnsTarget,
    SpecError,
)

TOPIC = "arn:aws:sns:us-east-1:123456789012:deployments"


def spec(**extra: Any) -> DeploymentSpec:
    return DeploymentSpec.from_dict(
        {
            "service": "lego-api",
            "hosted_zone": "lego-mocs.com",
            "record_name": "api.lego-mocs.com",
            "functions": [{"name": "lego-api-moc", "version": "3"}],
            **extra,
        }
    )


def problems(**extra: Any) -> list[str]:
    with pytest.raises(SpecError) as err:
        spec(**extra)
    return err.value.problems


def test_no_notifications_by_default():
    s = spec()
    assert s.notifications is None and s.assigned_users == () and s.approvers == []


def test_defaults_send_every_event_and_call_overdue_after_the_story_target():
    s = spec(notifications={"sns": {"target_arn": TOPIC}, "slack": {}})
    assert s.notifications == NotificationSpec(
        sns=SnsTarget(target_arn=TOPIC, aws_conn_id="aws_default", region_name=None),
        slack=SlackTarget(slack_webhook_conn_id="slack_default"),
        events=NOTIFICATION_EVENTS,
        overdue_after_seconds=DEFAULT_OVERDUE_SECONDS,
    )
    assert DEFAULT_OVERDUE_SECONDS == 30 * 60
    assert s.notifications.targets == ("sns", "slack")


def test_settings_and_approvers_survive_the_plan_xcom():
    s = spec(
        notifications={"slack": {"slack_webhook_conn_id": "deploy_chat"}, "events": ["rolled_back", "overdue"]},
        assigned_users=[{"id": "alice", "name": "Alice"}, {"id": "bob"}],
    )
    again = DeploymentSpec.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s
    assert again.notifications.events == ("rolled_back", "overdue")
    assert again.approvers == [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "bob"}]


def test_every_settings_problem_is_named_on_its_own_line():
    assert problems(
        notifications={
            "sns": {"target_arn": "deployments", "aws_conn_id": "", "region_name": "Europe"},
            "slack": {"slack_webhook_conn_id": "a\nb"},
            "events": ["rollback", "paged"],
            "overdue_after_seconds": 0,
        }
    ) == [
        "notifications.sns.target_arn must be an SNS topic or endpoint ARN (arn:aws:sns:<region>:<account>:<name>), "
        "got 'deployments'",
        "notifications.sns.aws_conn_id must be an Airflow connection id, got ''",
        "notifications.sns.region_name must be an AWS region, got 'Europe'",
        "notifications.slack.slack_webhook_conn_id must be an Airflow connection id, got 'a\\nb'",
        "notifications.events: unknown event 'rollback' (did you mean 'rolled_back'?)",
        f"notifications.events: unknown event 'paged'; events are {list(NOTIFICATION_EVENTS)}",
        "notifications.overdue_after_seconds must be a positive number of seconds (at most 366 days), got 0",
    ]


@pytest.mark.parametrize(
    ("notifications", "problem"),
    [
        ("sns", "notifications must be a mapping, got 'sns'"),
        ({}, "notifications: give sns, slack or both"),
        ({"email": {}}, "notifications: unknown keys ['email']; known keys are"),
        ({"sns": {}}, "notifications.sns: target_arn is required"),
        ({"sns": {"target_arn": TOPIC, "topic": "x"}}, "notifications.sns: unknown keys ['topic']"),
        ({"slack": {}, "events": []}, "notifications.events must be a non-empty list of events"),
        ({"slack": {}, "events": "rolled_back"}, "notifications.events must be a non-empty list of events"),
    ],
)
def test_a_malformed_setting_is_refused(notifications, problem):
    assert any(p.startswith(problem) for p in problems(notifications=notifications)), problems


def test_slack_without_the_slack_provider_says_how_to_install_it(monkeypatch):
    import bluegreen_provider.spec as spec_module

    monkeypatch.setattr(spec_module, "_provider_installed", lambda name: name != "apache-airflow-providers-slack")
    assert problems(notifications={"slack": {}}) == [
        "notifications.slack needs the Slack provider: pip install 'airflow-provider-bluegreen[slack]'"
    ]


def test_assigned_users_problems_are_named_per_person():
    assert problems(assigned_users=["alice", {"id": ""}, {"id": "bob", "role": "admin"}, {"id": "bob", "name": 7}]) == [
        'assigned_users[0] must be {"id": ..., "name": ...}, got \'alice\'',
        "assigned_users[1].id must be the user's Airflow id (1..256 characters), got ''",
        "assigned_users[2]: unknown keys ['role']; known keys are ['id', 'name']",
        "assigned_users[3].name must be 1..256 characters without control characters, got 7",
        "assigned_users: duplicate ids ['bob']",
    ]
    assert problems(assigned_users="alice") == [
        'assigned_users must be a list of {"id": ..., "name": ...}, got \'alice\''
    ]

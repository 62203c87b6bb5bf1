"""Route53ChangeTrigger: serialisation, polling until INSYNC, timeout, and one run against moto."""

from __future__ import annotations

import asyncio
import importlib

import boto3
import pytest
from moto import mock_aws

from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.triggers.route53 import Route53ChangeTrigger


def _events(trigger: Route53ChangeTrigger) -> list[dict]:
    async def collect():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def statuses(monkeypatch):
    """Replace GetChange with a scripted sequence of statuses; moto answers INSYNC at once."""
    polls: list[str] = []

    def install(*answers: str, then: str | None = None):
        queue = list(answers)

        def get_change_status(self, change_id):
            polls.append(change_id)
            return queue.pop(0) if queue else then

        monkeypatch.setattr(Route53Hook, "get_change_status", get_change_status)
        return polls

    return install


def test_serialize_round_trip():
    trigger = Route53ChangeTrigger(change_id="C123", aws_conn_id="aws_prod", poll_interval=2.5, timeout_seconds=60)
    path, kwargs = trigger.serialize()
    assert path == "bluegreen_provider.triggers.route53.Route53ChangeTrigger"
    assert kwargs == {"change_id": "C123", "aws_conn_id": "aws_prod", "poll_interval": 2.5, "timeout_seconds": 60}
    module, name = path.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)


def test_success_after_pending_polls(aws_env, statuses):
    polls = statuses("PENDING", "PENDING", "INSYNC")
    events = _events(Route53ChangeTrigger(change_id="C1", aws_conn_id=None, poll_interval=0.01, timeout_seconds=30))
    assert events == [{"status": "success", "change_id": "C1"}]
    assert polls == ["C1", "C1", "C1"]


def test_timeout_yields_one_event(aws_env, statuses):
    polls = statuses(then="PENDING")
    events = _events(Route53ChangeTrigger(change_id="C2", aws_conn_id=None, poll_interval=0.01, timeout_seconds=0.05))
    assert len(events) == 1
    assert events[0]["status"] == "timeout" and events[0]["change_id"] == "C2"
    assert "C2 still PENDING after 0.05s" in events[0]["message"]
    assert len(polls) >= 2


def test_real_change_against_moto(aws_env):
    with mock_aws():
        r53 = boto3.client("route53")
        zone_id = r53.create_hosted_zone(Name="example.com", CallerReference="t")["HostedZone"]["Id"]
        r53.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": "api.example.com",
                            "Type": "A",
                            "SetIdentifier": s,
                            "Weight": w,
                            "TTL": 60,
                            "ResourceRecords": [{"Value": "192.0.2.1"}],
                        },
                    }
                    for s, w in (("blue", 100), ("green", 0))
                ]
            },
        )
        change = Route53Hook(aws_conn_id=None).set_split(
            zone_id, "api.example.com", "A", {"blue": 90, "green": 10}, comment="10%"
        )
        events = _events(Route53ChangeTrigger(change_id=change, aws_conn_id=None, poll_interval=0.01))
    assert events == [{"status": "success", "change_id": change}]

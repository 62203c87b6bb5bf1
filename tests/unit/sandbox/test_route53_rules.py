"""Route53's documented change-batch rules, as the sandbox's moto now enforces them.

Each test quotes the rule from the ChangeResourceRecordSets API reference and reads the zone back
with plain boto3.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bluegreen_provider.sandbox import route53_rules

ZONE = "example.com"
RECORD = "api.example.com."
ALIAS = {
    "HostedZoneId": "Z1UJRXOUMOOFQ8",
    "DNSName": "d-blue.execute-api.us-east-1.amazonaws.com.",
    "EvaluateTargetHealth": False,
}


def weighted(set_id: str, weight: int, **extra) -> dict:
    return {
        "Name": RECORD,
        "Type": "A",
        "SetIdentifier": set_id,
        "Weight": weight,
        "AliasTarget": {**ALIAS, "DNSName": f"d-{set_id}.execute-api.us-east-1.amazonaws.com."},
        **extra,
    }


def txt(value: str) -> dict:
    return {"Name": f"_state.{RECORD}", "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": f'"{value}"'}]}


@pytest.fixture
def r53(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    route53_rules.install()
    with mock_aws():
        client = boto3.client("route53", region_name="us-east-1")
        zone = client.create_hosted_zone(Name=ZONE, CallerReference="rules")["HostedZone"]["Id"]
        client.change_resource_record_sets(
            HostedZoneId=zone,
            ChangeBatch={
                "Changes": [
                    {"Action": "CREATE", "ResourceRecordSet": r}
                    for r in (weighted("blue", 100), weighted("green", 0), txt("gen=1"))
                ]
            },
        )
        yield client, zone


def snapshot(client, zone) -> str:
    return json.dumps(
        client.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"], sort_keys=True, default=str
    )


def batch(client, zone, *changes):
    return client.change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": a, "ResourceRecordSet": r} for a, r in changes]}
    )


def rejected(client, zone, *changes) -> str:
    with pytest.raises(ClientError) as err:
        batch(client, zone, *changes)
    assert err.value.response["Error"]["Code"] == "InvalidChangeBatch"
    return err.value.response["Error"]["Message"]


def test_delete_must_repeat_the_current_weight(r53):
    """'To delete a resource record set, you must specify all the same values that you specified when you
    created it.'"""
    client, zone = r53
    before = snapshot(client, zone)
    message = rejected(client, zone, ("DELETE", weighted("blue", 90)), ("CREATE", weighted("blue", 50)))
    assert "values provided do not match" in message and "set-identifier='blue'" in message
    assert snapshot(client, zone) == before


@pytest.mark.parametrize(
    "stale",
    [
        weighted("green", 0, HealthCheckId="11111111-2222-3333-4444-555555555555"),
        {**weighted("green", 0), "AliasTarget": {**ALIAS, "DNSName": "elsewhere.example.net."}},
        {**txt("gen=1"), "TTL": 300},
        txt("gen=0"),
    ],
    ids=["health-check", "alias-target", "ttl", "txt-value"],
)
def test_delete_must_repeat_every_value(r53, stale):
    client, zone = r53
    before = snapshot(client, zone)
    rejected(client, zone, ("DELETE", stale))
    assert snapshot(client, zone) == before


def test_delete_of_a_missing_record_is_refused(r53):
    client, zone = r53
    message = rejected(client, zone, ("DELETE", weighted("purple", 0)))
    assert "was not found" in message


def test_create_over_an_existing_record_fails(r53):
    """'CREATE: Creates a resource record set that has the specified values' — and fails if it exists."""
    client, zone = r53
    before = snapshot(client, zone)
    message = rejected(client, zone, ("CREATE", weighted("blue", 100)))
    assert "already exists" in message
    assert snapshot(client, zone) == before


def test_a_batch_of_three_with_one_stale_delete_changes_nothing(r53):
    """Batches are transactional: 'If any of the changes in the request are invalid, none of them are made.'"""
    client, zone = r53
    before = snapshot(client, zone)
    message = rejected(
        client,
        zone,
        ("DELETE", txt("gen=1")),
        ("CREATE", txt("gen=2")),
        ("DELETE", weighted("green", 10)),  # stale: green is 0
    )
    assert message.count("Tried to") == 1
    assert snapshot(client, zone) == before  # byte for byte


def test_exact_delete_then_create_in_one_batch_is_a_compare_and_swap(r53):
    client, zone = r53
    batch(
        client,
        zone,
        ("DELETE", txt("gen=1")),
        ("CREATE", txt("gen=2")),
        ("DELETE", weighted("blue", 100)),
        ("CREATE", weighted("blue", 90)),
        ("DELETE", weighted("green", 0)),
        ("CREATE", weighted("green", 10)),
    )
    sets = {
        r.get("SetIdentifier", r["Type"]): r
        for r in client.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    }
    assert (sets["blue"]["Weight"], sets["green"]["Weight"]) == (90, 10)
    assert sets["TXT"]["ResourceRecords"] == [{"Value": '"gen=2"'}]
    # The loser of the race repeats the old values and changes nothing.
    before = snapshot(client, zone)
    rejected(client, zone, ("DELETE", txt("gen=1")), ("CREATE", txt("gen=2")))
    assert snapshot(client, zone) == before


def test_upsert_still_replaces(r53):
    client, zone = r53
    batch(client, zone, ("UPSERT", weighted("green", 5)))
    sets = {
        r.get("SetIdentifier"): r for r in client.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    }
    assert sets["green"]["Weight"] == 5


def test_each_change_has_its_own_id_and_stays_pending_for_the_propagation_time(r53):
    """'PENDING indicates that this request has not yet been applied to all Amazon Route 53 DNS servers.'"""
    client, zone = r53
    now = [1000.0]
    clock = route53_rules.SETTINGS.clock
    route53_rules.SETTINGS.clock = lambda: now[0]
    try:
        route53_rules.configure(propagation_seconds=30)
        first = batch(client, zone, ("UPSERT", weighted("green", 1)))["ChangeInfo"]
        now[0] += 10
        second = batch(client, zone, ("UPSERT", weighted("green", 2)))["ChangeInfo"]
        assert first["Id"] != second["Id"]
        assert first["Status"] == second["Status"] == "PENDING"
        now[0] += 20.5  # first: 30.5 s old, second: 20.5 s
        assert client.get_change(Id=first["Id"])["ChangeInfo"]["Status"] == "INSYNC"
        assert client.get_change(Id=second["Id"])["ChangeInfo"]["Status"] == "PENDING"
        now[0] += 10
        assert client.get_change(Id=second["Id"])["ChangeInfo"]["Status"] == "INSYNC"
        history = route53_rules.CHANGES.zone(zone)
        assert [c.change_id for c in history[-2:]] == [first["Id"].split("/")[-1], second["Id"].split("/")[-1]]
        green = [r for r in history[-1].record_sets if r.get("SetIdentifier") == "green"]
        assert green[0]["Weight"] in (2, "2")
    finally:
        route53_rules.configure(propagation_seconds=0)
        route53_rules.SETTINGS.clock = clock


def test_unknown_change_id_is_refused(r53):
    client, _ = r53
    with pytest.raises(ClientError) as err:
        client.get_change(Id="/change/CNOSUCHCHANGE")
    assert err.value.response["Error"]["Code"] == "NoSuchChange"

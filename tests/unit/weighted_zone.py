"""A hosted zone with a blue/green weighted A-alias record, built and read back with plain boto3.

The unit worlds (state, routers, operators) all start from this zone; reading it never goes through the
code under test.
"""

from __future__ import annotations

from typing import Any

from bluegreen_provider.state import DeploymentState, decode_txt

API_GATEWAY_ZONE = "Z1UJRXOUMOOFQ8"  # API Gateway's regional hosted zone in us-east-1


def weighted_set(record: str, colour: str, weight: int, *, action: str = "UPSERT") -> dict[str, Any]:
    """One change of the ``colour`` set of ``record``, aliasing that slot's API Gateway domain."""
    return {
        "Action": action,
        "ResourceRecordSet": {
            "Name": record,
            "Type": "A",
            "SetIdentifier": colour,
            "Weight": weight,
            "AliasTarget": {
                "HostedZoneId": API_GATEWAY_ZONE,
                "DNSName": f"d-{colour}.execute-api.us-east-1.amazonaws.com",
                "EvaluateTargetHealth": False,
            },
        },
    }


def create_weighted_zone(route53: Any, zone: str, record: str, *, caller_reference: str) -> str:
    """Create ``zone`` with ``record`` at blue 100 / green 0; returns the zone id without its prefix."""
    zone_id = route53.create_hosted_zone(Name=zone, CallerReference=caller_reference)["HostedZone"]["Id"]
    zone_id = zone_id.split("/")[-1]
    set_split(route53, zone_id, record, blue=100, green=0)
    return zone_id


def set_split(route53: Any, zone_id: str, record: str, *, blue: int, green: int) -> None:
    """Set both weights in one batch, by hand (outside bluegreen; the state record is left as it is)."""
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [weighted_set(record, "blue", blue), weighted_set(record, "green", green)]},
    )


def records(route53: Any, zone_id: str) -> list[dict[str, Any]]:
    """Every record set of the zone, as Route53 lists them."""
    return route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]


def split_of(sets: list[dict[str, Any]], record: str | None = None) -> dict[str, int]:
    """Weight per set identifier, of ``record`` only when given."""
    return {
        r["SetIdentifier"]: int(r["Weight"])
        for r in sets
        if "SetIdentifier" in r and (record is None or r["Name"].rstrip(".") == record)
    }


def state_record_of(sets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The deployment's TXT state record among the zone's sets (at most one)."""
    found = [r for r in sets if r["Type"] == "TXT" and r["Name"].lower().startswith("_bluegreen.")]
    assert len(found) <= 1, found
    return found[0] if found else None


def state_of(sets: list[dict[str, Any]]) -> DeploymentState | None:
    """The deployment state record, decoded; None when there is none."""
    record = state_record_of(sets)
    if record is None:
        return None
    return DeploymentState.from_json(decode_txt(" ".join(v["Value"] for v in record["ResourceRecords"])))

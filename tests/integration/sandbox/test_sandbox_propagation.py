"""Propagation, live: a change is PENDING for propagation_seconds while resolvers switch over linearly."""

from __future__ import annotations

import time

import pytest

from bluegreen_provider.sandbox.world import weighted_record

PROPAGATION = 4.0


def test_change_is_pending_then_insync_and_traffic_moves_over_the_propagation(aws_sandbox, wait_until) -> None:
    sandbox = aws_sandbox(propagation_seconds=PROPAGATION, dns_ttl_seconds=0.2)
    route53 = sandbox.clients()("route53")
    wait_until(lambda: sandbox.stats()["blue"]["requests"] > 200, what="traffic on blue")
    submitted = time.time()
    change = route53.change_resource_record_sets(
        HostedZoneId=sandbox.hosted_zone_id,
        ChangeBatch={
            "Changes": [
                {"Action": "UPSERT", "ResourceRecordSet": weighted_record("blue", 0)},
                {"Action": "UPSERT", "ResourceRecordSet": weighted_record("green", 100)},
            ]
        },
    )["ChangeInfo"]
    assert change["Status"] == "PENDING"
    # Route53 already holds the new record sets (read back), yet resolvers still mostly answer blue.
    records = route53.list_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id)["ResourceRecordSets"]
    assert {r.get("SetIdentifier"): r.get("Weight") for r in records if r.get("SetIdentifier")} == {
        "blue": 0,
        "green": 100,
    }
    wait_until(lambda: route53.get_change(Id=change["Id"])["ChangeInfo"]["Status"] == "INSYNC", timeout=10)
    insync_seen = time.time()
    assert insync_seen - submitted >= PROPAGATION - 0.05
    wait_until(lambda: time.time() > insync_seen + 1.0, what="a second of INSYNC traffic")

    rows = {row["second"]: row for row in sandbox.served(submitted - 1)}

    def green_share(second: int) -> tuple[float, float]:
        """(observed green share in that wall-clock second, the model's share at its midpoint)."""
        row = rows[second]
        total = row["blue"]["requests"] + row["green"]["requests"]
        expected = min(1.0, (second + 0.5 - submitted) / PROPAGATION)
        return row["green"]["requests"] / total, expected

    seconds = [s for s in rows if submitted + 0.5 <= s and s + 1 <= submitted + PROPAGATION - 0.5]
    assert len(seconds) >= 2
    shares = [green_share(s) for s in seconds]
    for observed, expected in shares:
        assert observed == pytest.approx(expected, abs=0.15)  # 0 % -> 100 % linearly over the propagation
    assert shares[0][0] < shares[-1][0]
    last_blue = sandbox.last_request_at("blue")
    assert last_blue is not None
    assert submitted + PROPAGATION - 0.5 < last_blue <= submitted + PROPAGATION + 0.2 + 0.1  # + TTL, one tick
    assert sandbox.share_of_resolvers_on_latest_change() == 1.0

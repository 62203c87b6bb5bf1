"""DNS caching clients, live: after a shift to 0 % a slot keeps serving until the last TTL expires."""

from __future__ import annotations

import json
import time
import urllib.request

from bluegreen_provider.sandbox.world import weighted_record

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _shift(sandbox, blue: int, green: int) -> float:
    at = time.time()
    sandbox.clients()("route53").change_resource_record_sets(
        HostedZoneId=sandbox.hosted_zone_id,
        ChangeBatch={
            "Changes": [
                {"Action": "UPSERT", "ResourceRecordSet": weighted_record("blue", blue)},
                {"Action": "UPSERT", "ResourceRecordSet": weighted_record("green", green)},
            ]
        },
    )
    return at


def test_cached_answers_keep_reaching_the_drained_slot_for_one_ttl(aws_sandbox, wait_until) -> None:
    ttl = 3.0
    sandbox = aws_sandbox(propagation_seconds=0, dns_ttl_seconds=ttl, dns_clients=50)
    wait_until(lambda: sandbox.stats()["blue"]["requests"] > 0, what="traffic")
    wait_until(lambda: sandbox.served(time.time() - 100) and time.time() - sandbox.served()[0]["second"] > ttl + 1)
    shifted = _shift(sandbox, 0, 100)
    wait_until(lambda: (sandbox.last_request_at("green") or 0) > shifted, what="green traffic")
    wait_until(lambda: time.time() > shifted + ttl + 1.0, what="one TTL and a second")
    last_blue = sandbox.last_request_at("blue")
    assert last_blue is not None
    assert shifted + ttl - 0.7 <= last_blue <= shifted + ttl + 0.1
    # The per-second series agrees, and so does the status endpoint.
    blue_seconds = [row["second"] for row in sandbox.served(shifted) if row["blue"]["requests"]]
    assert max(blue_seconds) == int(last_blue)
    with _opener.open(f"{sandbox.http_url}/status", timeout=5) as response:
        status = json.loads(response.read())
    assert status["profile"]["dns_ttl_seconds"] == ttl
    assert status["served_last"]["blue"]["last_request_at"] == last_blue
    assert status["served_per_second"][-1]["green"]["requests"] > 0


def test_fast_profile_drains_within_about_a_second(sandbox, wait_until) -> None:
    wait_until(lambda: sandbox.stats()["blue"]["requests"] > 0, what="traffic")
    shifted = _shift(sandbox, 0, 100)
    wait_until(lambda: time.time() > shifted + 2.0, what="two seconds")
    assert sandbox.status()["profile"]["name"] == "fast"
    # Drained within the 1 s TTL (a loaded machine may stall the traffic thread, so no lower bound).
    assert shifted - 1.0 <= sandbox.last_request_at("blue") <= shifted + 1.1

"""Route53 API limits: a per-account token bucket answering Throttling, and PriorRequestNotComplete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from bluegreen_provider.sandbox import route53_rules, throttling
from bluegreen_provider.sandbox.throttling import TokenBucket
from bluegreen_provider.sandbox.world import weighted_record


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_refill_rate() -> None:
    clock = _Clock()
    bucket = TokenBucket(50, 10, clock)
    assert sum(bucket.take() for _ in range(60)) == 50
    clock.now += 1.0
    assert sum(bucket.take() for _ in range(60)) == 10
    clock.now += 100
    assert sum(bucket.take() for _ in range(100)) == 50  # never more than the burst


@pytest.fixture
def route53() -> Iterator[tuple[Any, _Clock]]:
    route53_rules.install()
    throttling.install()
    clock = _Clock()
    with mock_aws():
        route53_rules.CHANGES.clear()
        no_retries = Config(retries={"total_max_attempts": 1, "mode": "standard"})
        yield boto3.client("route53", region_name="us-east-1", config=no_retries), clock
    throttling.LIMITS.configure(enabled=False)
    throttling.LIMITS.clock = throttling.time.monotonic
    throttling.LIMITS.wall_clock = throttling.time.time


def test_beyond_the_burst_route53_answers_400_throttling_rate_exceeded(route53: tuple[Any, _Clock]) -> None:
    client, clock = route53
    throttling.LIMITS.configure(enabled=True, burst=5, rate_per_second=1)
    throttling.LIMITS.clock = clock
    for _ in range(5):
        client.list_hosted_zones()
    with pytest.raises(ClientError) as info:
        client.list_hosted_zones()
    error = info.value.response
    assert error["Error"]["Code"] == "Throttling" and error["Error"]["Message"] == "Rate exceeded"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    clock.now += 1.0
    client.list_hosted_zones()
    assert throttling.LIMITS.throttled == 1


def test_off_by_default(route53: tuple[Any, _Clock]) -> None:
    client, _ = route53
    throttling.LIMITS.configure(enabled=False)
    for _ in range(80):
        client.list_hosted_zones()


def test_a_change_while_the_previous_one_is_applied_is_refused(route53: tuple[Any, _Clock]) -> None:
    client, clock = route53
    zone = client.create_hosted_zone(Name="lego-mocs.com", CallerReference="t")["HostedZone"]["Id"].split("/")[-1]
    throttling.LIMITS.configure(enabled=True, burst=50, rate_per_second=10, prior_request_seconds=2)
    throttling.LIMITS.wall_clock = clock
    route53_rules.SETTINGS.clock = clock
    try:
        batch = {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": weighted_record("blue", 100)}]}
        client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch=batch)
        clock.now += 1.9
        with pytest.raises(ClientError) as info:
            client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch=batch)
        assert info.value.response["Error"]["Code"] == "PriorRequestNotComplete"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert len(route53_rules.CHANGES.zone(zone)) == 1  # nothing applied
        client.list_resource_record_sets(HostedZoneId=zone)  # reads are not refused
        clock.now += 0.1
        client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch=batch)
        assert len(route53_rules.CHANGES.zone(zone)) == 2
    finally:
        route53_rules.SETTINGS.clock = throttling.time.time

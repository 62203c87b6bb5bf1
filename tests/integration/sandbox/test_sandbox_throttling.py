"""Route53 throttling, live: beyond the burst the API answers 400 Throttling; changes too close together
get PriorRequestNotComplete; botocore's own retries ride both out."""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bluegreen_provider.sandbox.world import weighted_record


def _client(sandbox, retries: dict) -> object:
    return boto3.client(
        "route53",
        endpoint_url=sandbox.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries=retries),
    )


def test_bursts_beyond_the_bucket_are_throttled(aws_sandbox) -> None:
    sandbox = aws_sandbox(throttle_burst=10, throttle_rate_per_second=0.5)
    route53 = _client(sandbox, {"total_max_attempts": 1, "mode": "standard"})
    answers = []
    for _ in range(14):
        try:
            route53.list_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id)
            answers.append("ok")
        except ClientError as exc:
            error = exc.response
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
            answers.append(f"{error['Error']['Code']}: {error['Error']['Message']}")
    assert answers.count("ok") in (10, 11)  # the burst, plus at most one refilled token
    assert answers[-1] == "Throttling: Rate exceeded"
    assert sandbox.status()["throttling"]["throttled"] == 14 - answers.count("ok")


def test_a_change_right_after_another_gets_prior_request_not_complete(aws_sandbox, wait_until) -> None:
    sandbox = aws_sandbox(prior_request_seconds=1.0, propagation_seconds=0)
    seeded = sandbox.route53_changes()[-1]["submitted_at"]
    wait_until(lambda: time.time() > seeded + 1.0, what="the seed change to be applied")
    strict = _client(sandbox, {"total_max_attempts": 1, "mode": "standard"})
    batch = {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": weighted_record("green", 5)}]}
    strict.change_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id, ChangeBatch=batch)
    with pytest.raises(ClientError) as info:
        strict.change_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id, ChangeBatch=batch)
    assert info.value.response["Error"]["Code"] == "PriorRequestNotComplete"
    assert len(sandbox.route53_changes()) == 2  # seed + the first change; the refused one left no trace
    # botocore retries PriorRequestNotComplete for Route53 (as product code relies on against AWS).
    patient = _client(sandbox, {"max_attempts": 10, "mode": "legacy"})
    patient.change_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id, ChangeBatch=batch)
    assert len(sandbox.route53_changes()) == 3
    assert sandbox.weights()["green"] == 5


def test_throttling_is_off_on_the_fast_profile(sandbox) -> None:
    route53 = _client(sandbox, {"total_max_attempts": 1, "mode": "standard"})
    for _ in range(80):
        route53.list_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id)
    assert sandbox.status()["throttling"] == {"enabled": False, "throttled": 0, "prior_request_not_complete": 0}

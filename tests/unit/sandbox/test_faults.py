"""The fault proxy's decisions and answers: a seeded share of requests, the kinds asked for, and error
bodies botocore reads as the service's own throttling and 503 answers."""

from __future__ import annotations

from collections import Counter

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.parsers import create_parser
from botocore.retries.standard import RetryContext, StandardRetryConditions

from bluegreen_provider.sandbox.faults import (
    KINDS,
    FaultPlan,
    FaultProxy,
    cbor_text_map,
    fault_answer,
    operation_of,
    protocol_of,
    service_of,
)

TARGET = "http://127.0.0.1:9"


def sign(service: str) -> dict[str, str]:
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/{service}/aws4_request, ..."}


def test_the_share_of_faults_follows_the_plan_and_the_seed() -> None:
    proxy = FaultProxy(TARGET, FaultPlan(share=0.2, seed=3))
    kinds = [proxy.decide("route53", "GetChange") for _ in range(5000)]
    faults = [k for k in kinds if k is not None]
    assert 0.18 < len(faults) / len(kinds) < 0.22
    assert set(Counter(faults)) == set(KINDS)
    assert min(Counter(faults).values()) > 150  # each kind about a fifth of the faults
    again = FaultProxy(TARGET, FaultPlan(share=0.2, seed=3))
    assert [again.decide("route53", "GetChange") for _ in range(5000)] == kinds
    other = FaultProxy(TARGET, FaultPlan(share=0.2, seed=4))
    assert [other.decide("route53", "GetChange") for _ in range(5000)] != kinds
    assert proxy.counts()["requests"] == 5000 and proxy.counts()["faults"] == len(faults)


def test_only_the_kinds_services_and_operations_asked_for() -> None:
    proxy = FaultProxy(TARGET, FaultPlan(share=1.0, kinds=("throttle",), services=("route53", "cloudwatch")))
    assert proxy.decide("lambda", "GetAlias") is None
    assert proxy.decide("monitoring", "GetMetricData") == "throttle"
    assert proxy.decide("route53", "GetChange") == "throttle"
    only = FaultProxy(TARGET, FaultPlan(share=1.0, kinds=("drop_applied",), operations=("ChangeResourceRecordSets",)))
    assert only.decide("route53", "ListResourceRecordSets") is None
    assert only.decide("route53", "ChangeResourceRecordSets") == "drop_applied"
    assert [(f.service, f.operation, f.kind) for f in only.injected()] == [
        ("route53", "ChangeResourceRecordSets", "drop_applied")
    ]


def test_a_limit_stops_the_faults_after_that_many() -> None:
    proxy = FaultProxy(TARGET, FaultPlan(share=1.0, kinds=("drop",), limit=2))
    assert [proxy.decide("route53", "GetChange") for _ in range(4)] == ["drop", "drop", None, None]


def test_no_faults_at_share_zero() -> None:
    proxy = FaultProxy(TARGET, FaultPlan(share=0.0))
    assert all(proxy.decide("route53", "GetChange") is None for _ in range(1000))


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"share": 1.5}, "share must be a number in 0..1"),
        ({"share": True}, "share must be a number in 0..1"),
        ({"kinds": ("throttle", "fire")}, "kinds must be a non-empty selection"),
        ({"kinds": ()}, "kinds must be a non-empty selection"),
        ({"slow_seconds": -1}, "slow_seconds must be >= 0"),
        ({"limit": -1}, "limit must be an int >= 0 or None"),
    ],
)
def test_a_bad_plan_is_refused_with_its_problem(settings, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        FaultPlan(**settings)


def test_the_proxy_only_forwards_to_an_http_host_and_port() -> None:
    with pytest.raises(ValueError, match="http://host:port"):
        FaultProxy("https://moto.example.com", FaultPlan())


def test_requests_are_named_by_service_and_operation() -> None:
    assert service_of(sign("route53")) == "route53"
    assert service_of({}) == ""
    route53 = sign("route53")
    assert operation_of("route53", "POST", "/2013-04-01/hostedzone/Z1/rrset/", route53, b"") == (
        "ChangeResourceRecordSets"
    )
    assert operation_of("route53", "GET", "/2013-04-01/hostedzone/Z1/rrset?name=a", route53, b"") == (
        "ListResourceRecordSets"
    )
    assert operation_of("route53", "GET", "/2013-04-01/change/C1", route53, b"") == "GetChange"
    assert operation_of("route53", "GET", "/2013-04-01/healthcheck/h1/status", route53, b"") == "GetHealthCheckStatus"
    assert operation_of("lambda", "PUT", "/2015-03-31/functions/f/aliases/a", sign("lambda"), b"") == "UpdateAlias"
    assert operation_of("lambda", "POST", "/2015-03-31/functions/f/versions", sign("lambda"), b"") == "PublishVersion"
    cbor = {**sign("monitoring"), "smithy-protocol": "rpc-v2-cbor"}
    assert operation_of(
        "monitoring", "POST", "/service/GraniteServiceVersion20100801/operation/GetMetricData", cbor, b""
    ) == ("GetMetricData")
    assert operation_of("monitoring", "POST", "/", sign("monitoring"), b"Action=DescribeAlarms&Version=x") == (
        "DescribeAlarms"
    )
    assert operation_of("route53", "GET", "/2013-04-01/somethingnew", route53, b"") == "GET /2013-04-01/somethingnew"


def _parsed(kind: str, service: str, botocore_service: str, headers: dict[str, str]) -> tuple[dict, bool]:
    """The answer as botocore's own parser for the service's protocol reads it, and whether botocore's
    standard retry mode retries it."""
    protocol = protocol_of(service, headers)
    status, answer_headers, body = fault_answer(kind, service, protocol)
    model = botocore.session.get_session().get_service_model(botocore_service)
    parser = create_parser({"cbor": "smithy-rpc-v2-cbor", "json": "json"}.get(protocol, protocol))
    response = {"status_code": status, "headers": {k.lower(): v for k, v in answer_headers.items()}, "body": body}
    operation = model.operation_model(next(iter(model.operation_names)))
    parsed = parser.parse(response, operation.output_shape)
    context = RetryContext(
        attempt_number=1,
        operation_model=operation,
        parsed_response=parsed,
        http_response=AWSResponse("http://127.0.0.1:9/", status, answer_headers, None),
        request_context={},
    )
    return parsed, StandardRetryConditions(max_attempts=3).is_retryable(context)


@pytest.mark.parametrize(
    ("service", "botocore_service", "headers", "code", "status"),
    [
        ("route53", "route53", {}, "Throttling", 400),
        ("lambda", "lambda", {}, "TooManyRequestsException", 429),
        ("monitoring", "cloudwatch", {"smithy-protocol": "rpc-v2-cbor"}, "ThrottlingException", 400),
        (
            "monitoring",
            "cloudwatch",
            {"X-Amz-Target": "GraniteServiceVersion20100801.GetMetricData"},
            "ThrottlingException",
            400,
        ),
        ("monitoring", "cloudwatch", {}, "Throttling", 400),
    ],
)
def test_throttling_answers_read_as_the_service_throttling(service, botocore_service, headers, code, status) -> None:
    parsed, retried = _parsed("throttle", service, botocore_service, headers)
    assert parsed["Error"]["Code"] == code
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == status
    assert retried


@pytest.mark.parametrize(
    ("service", "botocore_service", "headers"),
    [
        ("route53", "route53", {}),
        ("lambda", "lambda", {}),
        ("monitoring", "cloudwatch", {"smithy-protocol": "rpc-v2-cbor"}),
    ],
)
def test_unavailable_answers_are_503(service, botocore_service, headers) -> None:
    parsed, retried = _parsed("unavailable", service, botocore_service, headers)
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert parsed["Error"]["Code"] == "ServiceUnavailable"
    assert retried


def test_cbor_maps_of_text() -> None:
    assert cbor_text_map({"a": "b"}) == bytes([0xA1, 0x61, ord("a"), 0x61, ord("b")])
    long = "x" * 300
    encoded = cbor_text_map({"k": long})
    assert encoded[:4] == bytes([0xA1, 0x61, ord("k"), 0x79]) and encoded[4:6] == (300).to_bytes(2, "big")

"""Route53 health checkers, live: GetHealthCheckStatus reports 8 regions; unhealthy after interval x threshold."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bluegreen_provider.sandbox.health_checkers import REGIONS
from bluegreen_provider.sandbox.world import slot_dns_name

SCALE = 0.05  # RequestInterval 10 s -> 0.5 s


def _create_check(route53, slot: str, interval: int = 10, threshold: int = 3) -> str:
    return route53.create_health_check(
        CallerReference=f"test-{slot}-{time.monotonic_ns()}",
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": slot_dns_name(slot),
            "Port": 443,
            "ResourcePath": "/health",
            "RequestInterval": interval,
            "FailureThreshold": threshold,
        },
    )["HealthCheck"]["Id"]


def test_unhealthy_release_fails_the_check_after_interval_times_threshold(aws_sandbox, wait_until, deploy_to) -> None:
    sandbox = aws_sandbox(health_check_interval_scale=SCALE)
    route53 = sandbox.clients()("route53")
    check = _create_check(route53, "green")
    wait_until(lambda: len(route53.get_health_check_status(HealthCheckId=check)["HealthCheckObservations"]) == 8)
    observations = route53.get_health_check_status(HealthCheckId=check)["HealthCheckObservations"]
    assert sorted(o["Region"] for o in observations) == sorted(REGIONS)
    assert all(o["StatusReport"]["Status"].startswith("Success: HTTP Status Code 200") for o in observations)

    deployed = time.time()
    deploy_to(sandbox, "unhealthy", "green")
    wait_until(
        lambda: (sandbox.health_check_status(check) or {}).get("healthy") is False, timeout=20, what="unhealthy check"
    )
    took = sandbox.health_check_status(check)["unhealthy_since"] - deployed
    # 3 failed probes 0.5 s apart per checker, the 7th checker's third failure decides it. A probe
    # delayed by a loaded machine keeps its schedule (the next one is not pushed back), so the three
    # can span as little as one interval and a bit; never a single probe's verdict.
    assert 10 * SCALE < took <= 10 * SCALE * 3 + 1.0
    observations = route53.get_health_check_status(HealthCheckId=check)["HealthCheckObservations"]
    assert all("HTTP Status Code 503" in o["StatusReport"]["Status"] for o in observations)
    wait_until(lambda: _route53_metric(sandbox, check) == 0.0, timeout=10, what="HealthCheckStatus metric 0")


def test_one_failing_region_does_not_fail_the_check(aws_sandbox, wait_until) -> None:
    sandbox = aws_sandbox(health_check_interval_scale=SCALE)
    route53 = sandbox.clients()("route53")
    sandbox.fail_checker_region("ap-southeast-2")
    check = _create_check(route53, "blue", threshold=1)
    wait_until(lambda: (sandbox.health_check_status(check) or {}).get("healthy_checkers") == 7, timeout=30)
    wait_until(lambda: time.time() > sandbox.health_check_status(check)["healthy_since"] + 2.0)
    status = sandbox.health_check_status(check)
    assert status["healthy"] and status["verdicts"]["ap-southeast-2"] is False
    reports = {
        o["Region"]: o["StatusReport"]["Status"]
        for o in route53.get_health_check_status(HealthCheckId=check)["HealthCheckObservations"]
    }
    assert reports["ap-southeast-2"].startswith("Failure: Connection timed out")
    assert sum(r.startswith("Success") for r in reports.values()) == 7


def _route53_metric(sandbox, check: str) -> float | None:
    """The latest AWS/Route53 HealthCheckStatus datapoint of the check."""
    now = datetime.now(UTC)
    points = sandbox.clients()("cloudwatch").get_metric_statistics(
        Namespace="AWS/Route53",
        MetricName="HealthCheckStatus",
        Dimensions=[{"Name": "HealthCheckId", "Value": check}],
        StartTime=now - timedelta(seconds=30),
        EndTime=now + timedelta(seconds=2),
        Period=1,
        Statistics=["Minimum"],
    )["Datapoints"]
    return sorted(points, key=lambda p: p["Timestamp"])[-1]["Minimum"] if points else None

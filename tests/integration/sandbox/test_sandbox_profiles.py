"""Profiles, live: fast stays today's sandbox; aws and its overrides reach every rule; the CLI selects one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bluegreen_provider.sandbox import Sandbox


def test_fast_profile_keeps_mocks_single_healthy_observation(sandbox: Sandbox) -> None:
    route53 = sandbox.clients()("route53")
    check = route53.create_health_check(
        CallerReference="fast-profile",
        HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": "example.com", "Port": 443},
    )["HealthCheck"]["Id"]
    observations = route53.get_health_check_status(HealthCheckId=check)["HealthCheckObservations"]
    assert len(observations) == 1 and observations[0]["StatusReport"]["Status"].startswith("Success")
    status = sandbox.status()
    assert status["profile"]["name"] == "fast" and status["health_checks"] == {}
    assert sandbox.alarm_period == 10  # derived from the flush, as before


def test_aws_profile_overrides_reach_the_world(aws_sandbox) -> None:
    sandbox = aws_sandbox(metrics_period_seconds=6, metrics_lag_seconds=12, dns_ttl_seconds=2.5)
    profile = sandbox.status()["profile"]
    assert (profile["name"], profile["metrics_period_seconds"], profile["dns_ttl_seconds"]) == ("aws", 6, 2.5)
    assert profile["health_checkers"] == 8 and profile["throttling"] is True
    alarms = sandbox.clients()("cloudwatch").describe_alarms()["MetricAlarms"]
    assert {a["Period"] for a in alarms} == {6}


def test_cli_up_with_a_profile_and_status_prints_it(tmp_path: Path) -> None:
    state_dir = tmp_path / "cli"
    cli = [sys.executable, "-m", "bluegreen_provider.sandbox.cli"]
    up = subprocess.run(
        [*cli, "up", "--state-dir", str(state_dir), "--port", "0", "--profile", "aws",
         "--set", "propagation_seconds=7", "--set", "dns_ttl_seconds=9"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        status = subprocess.run(
            [*cli, "status", "--state-dir", str(state_dir)], capture_output=True, text=True, timeout=30
        )
        assert status.returncode == 0, status.stderr
        assert "profile aws: propagation 7 s, 200 clients with TTL 9 s" in status.stdout
        assert "health checkers 8, throttling on" in status.stdout
        bad = subprocess.run(
            [*cli, "inject", "region-down", "mars-1", "--state-dir", str(state_dir)], capture_output=True, text=True
        )
        assert bad.returncode == 1 and "unknown checker region" in bad.stderr
        ok = subprocess.run(
            [*cli, "inject", "region-down", "eu-west-1", "--state-dir", str(state_dir)], capture_output=True, text=True
        )
        assert ok.returncode == 0, ok.stderr
        again = subprocess.run([*cli, "status", "--state-dir", str(state_dir)], capture_output=True, text=True)
        assert "failing checker regions: eu-west-1" in again.stdout
    finally:
        subprocess.run([*cli, "down", "--state-dir", str(state_dir)], capture_output=True, timeout=60)

"""Fixtures for the sandbox tests: a fast Sandbox (high rate, short flush) and deployment helpers."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from bluegreen_provider.sandbox import Sandbox
from bluegreen_provider.sandbox.world import FUNCTIONS, alias_name, weighted_record

RATE = 400.0
FLUSH = 0.5


def _wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(rate_per_second=RATE, flush_seconds=FLUSH, seed=7, state_dir=tmp_path / "sandbox") as sb:
        yield sb


# The aws profile with its timings scaled down so a live test takes seconds; each test overrides more.
AWS_SCALED: dict[str, Any] = {
    "propagation_seconds": 3.0,
    "dns_ttl_seconds": 1.0,
    "metrics_period_seconds": 2,
    "metrics_lag_seconds": 4.0,
    "health_check_interval_scale": 0.05,
}


@pytest.fixture
def aws_sandbox(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """Start a Sandbox on the aws profile (scaled down, any setting overridable); stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(**overrides: Any) -> Sandbox:
            settings = {"rate_per_second": RATE, "flush_seconds": FLUSH, **AWS_SCALED, **overrides}
            return stack.enter_context(Sandbox(profile="aws", seed=7, state_dir=tmp_path / "aws", **settings))

        yield start


def route53_retrying(sandbox: Sandbox) -> Any:
    """A Route53 client that retries as every real caller does (and the hooks do): on the aws profile a
    change right after another is answered ``PriorRequestNotComplete`` while the zone applies it."""
    return boto3.session.Session().client(
        "route53",
        endpoint_url=sandbox.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 10}),
    )


def _set_weights(sandbox: Sandbox, blue: int, green: int) -> None:
    """Shift traffic the way the deployment does: one UPSERT batch for both weighted record sets."""
    route53_retrying(sandbox).change_resource_record_sets(
        HostedZoneId=sandbox.hosted_zone_id,
        ChangeBatch={
            "Changes": [
                {"Action": "UPSERT", "ResourceRecordSet": weighted_record("blue", blue)},
                {"Action": "UPSERT", "ResourceRecordSet": weighted_record("green", green)},
            ]
        },
    )


def _deploy(
    sandbox: Sandbox, release: str, slot: str, functions: tuple[str, ...] = FUNCTIONS, *, zip_bytes: bytes | None = None
) -> dict[str, str]:
    """Upload a release, publish it and point the slot's alias at it; returns function → version."""
    lambda_ = sandbox.clients()("lambda")
    code = zip_bytes if zip_bytes is not None else sandbox.release_zip(release).read_bytes()
    versions = {}
    for function in functions:
        lambda_.update_function_code(FunctionName=function, ZipFile=code)
        version = lambda_.publish_version(FunctionName=function, Description=f"release {release}")["Version"]
        lambda_.update_alias(FunctionName=function, Name=alias_name(slot), FunctionVersion=version)
        versions[function] = version
    return versions


# Helpers as fixtures: test modules here are not a package, so they cannot import from conftest.


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    return _wait_until


@pytest.fixture
def set_weights(sandbox: Sandbox) -> Callable[[int, int], None]:
    return lambda blue, green: _set_weights(sandbox, blue, green)


@pytest.fixture
def set_sandbox_weights() -> Callable[[Sandbox, int, int], None]:
    """``set_weights`` for a sandbox the test starts itself (``aws_sandbox``)."""
    return _set_weights


@pytest.fixture
def deploy_to() -> Callable[..., dict[str, str]]:
    """``_deploy`` for a sandbox the test started itself (e.g. with ``aws_sandbox``)."""
    return _deploy


@pytest.fixture
def deploy(sandbox: Sandbox) -> Callable[..., dict[str, str]]:
    return lambda release, slot, functions=FUNCTIONS, **kw: _deploy(sandbox, release, slot, functions, **kw)

"""Lambda alias routing, live: the state core moves the live alias, traffic follows per invocation,
and Lambda's ExecutedVersion metrics judge the canary on its own requests only.

The deployment's own code runs against the sandbox (the transitions through the LambdaAliasRouter,
the CloudWatch hook's error-rate query); traffic invokes ``fn:production`` and the alias's weighted
routing picks the version of every request, whatever the Route53 weights say.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook, ErrorRateQuery
from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.sandbox import Sandbox
from bluegreen_provider.sandbox.world import API_NAME, FUNCTIONS, LIVE_ALIAS, RECORD_NAME, ZONE_NAME
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import ServiceState, acquire, record_release, rollback, shift

SPEC = DeploymentSpec.from_dict(
    {
        "service": API_NAME,
        "hosted_zone": ZONE_NAME,
        "record_name": RECORD_NAME,
        "router": "lambda_alias",
        "functions": [{"name": fn, "version": "2"} for fn in FUNCTIONS],
    }
)
RUN = "blue_green_deploy/alias-run"


@pytest.fixture
def alias_sandbox(tmp_path: Path, monkeypatch, wait_until) -> Iterator[Sandbox]:
    with Sandbox(
        rate_per_second=400.0, flush_seconds=0.5, seed=7, state_dir=tmp_path / "sandbox", router="lambda_alias"
    ) as box:
        for key, value in box.connection_env("aws_default").items():
            monkeypatch.setenv(key, value)
        wait_until(lambda: box.stats()["blue"]["requests"] > 0, what="traffic")
        yield box


def _service() -> ServiceState:
    return ServiceState(
        Route53Hook(aws_conn_id="aws_default"),
        Route53Hook(aws_conn_id="aws_default").resolve_zone_id(ZONE_NAME),
        SPEC,
        lambdas=LambdaAliasHook(aws_conn_id="aws_default"),
    )


def _rates(versions: dict[str, str], start: datetime, end: datetime) -> list[tuple[float, float]]:
    """(requests, errors) of the candidate's versions and of live's, read over one window in one query."""
    rates = CloudWatchMetricsHook(aws_conn_id="aws_default").error_rates(
        [
            ErrorRateQuery.lambda_versions(versions, LIVE_ALIAS),
            ErrorRateQuery.lambda_versions(dict.fromkeys(FUNCTIONS, "1"), LIVE_ALIAS),
        ],
        start=start,
        end=end,
        period_seconds=1,
        min_requests=1,
    )
    return [(rate.requests, rate.errors) for rate in rates]


def test_the_canary_is_judged_on_its_own_version_and_rollback_reaches_zero_at_once(
    alias_sandbox, deploy_to, wait_until
):
    box = alias_sandbox
    bad = deploy_to(box, "bad", "green")  # publishes version 2 on production-green
    assert set(bad.values()) == {"2"}
    svc = _service()
    acquire(svc, RUN, live_versions=dict.fromkeys(FUNCTIONS, "1"), run_is_active=lambda _: True)
    record_release(svc, RUN, bad)
    shift(svc, RUN, 50, previous_pct=0, serving=bad)
    # The sandbox re-reads the alias every second (later on a loaded machine): judge the whole
    # datapoints from the one after green's first request, so no second before the routing counts.
    wait_until(lambda: box.stats()["green"]["requests"] > 0, what="green's first request", timeout=30)
    started = datetime.now(UTC) + timedelta(seconds=1)
    wait_until(lambda: box.stats()["green"]["requests"] > 1000, what="green traffic through the alias", timeout=30)

    # The Route53 record was never touched: the alias alone sent green its share.
    weights = {
        r["SetIdentifier"]: r["Weight"]
        for r in box.clients()("route53").list_resource_record_sets(HostedZoneId=box.hosted_zone_id)[
            "ResourceRecordSets"
        ]
        if r.get("SetIdentifier")
    }
    assert weights == {"blue": 100, "green": 0}

    # One closed window, read once every request in it is published: both slots counted alike.
    ended = datetime.now(UTC)
    box.wait_for_flushes(2)
    (cand_requests, cand_errors), (live_requests, live_errors) = _rates(bad, started, ended)
    assert cand_requests > 200 and live_requests > 200, (cand_requests, live_requests)
    assert 0.35 < cand_requests / (cand_requests + live_requests) < 0.65  # picked per invocation at 50 %
    assert cand_errors / cand_requests > 0.1  # the bad release's errors, counted on its own version
    assert live_errors == 0  # the good version's datapoints hold none of them

    rollback(svc, RUN, "soak_50 failed")
    cleared = time.time()
    lam = box.clients()("lambda")
    assert {fn: lam.get_alias(FunctionName=fn, Name=LIVE_ALIAS).get("RoutingConfig") for fn in FUNCTIONS} == {
        fn: {"AdditionalVersionWeights": {}} for fn in FUNCTIONS
    }
    wait_until(lambda: (box.last_request_at("blue") or 0) > cleared + 3.0, what="three seconds of traffic")
    # No DNS cache: the candidate stops with the alias, once the sandbox re-reads it (every second;
    # a request is stamped when its handler returns, so a loaded machine adds a little).
    assert box.last_request_at("green") <= cleared + 2.0, (box.last_request_at("green"), cleared)

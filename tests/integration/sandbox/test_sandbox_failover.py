"""Health checks and failover, live on the aws profile: what Route53 would do with the deployment's records.

The stages' own code runs against the sandbox: the state transitions (plan, deploy, shifts, retire)
and the health stage, which creates the candidate's Route53 check. The sandbox's eight regional
checkers probe each slot's /health, and its resolvers answer as Route53 does: a set without a health
check is always healthy, and a weight-0 set is chosen once every set above 0 is unhealthy. Traffic
is counted per slot from the served requests; the answers are also computed from the records read
back from moto.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.operators.health import HealthCheckOperator
from bluegreen_provider.plan import Plan
from bluegreen_provider.sandbox.dns import answer_weights
from bluegreen_provider.sandbox.health_checkers import REGIONS
from bluegreen_provider.sandbox.world import (
    API_NAME,
    FUNCTIONS,
    RECORD_NAME,
    SLOTS,
    ZONE_NAME,
    alias_name,
    slot_dns_name,
)
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import ServiceState, acquire, record_release, retire, shift

SCALE = 0.05  # the health stage's RequestInterval of 30 s -> 1.5 s; unhealthy after 3 failed probes
TTL = 1.0
SPEC = DeploymentSpec.from_dict(
    {
        "service": API_NAME,
        "hosted_zone": ZONE_NAME,
        "record_name": RECORD_NAME,
        "functions": [{"name": fn, "version": "1"} for fn in FUNCTIONS],
        "slots": {
            slot: {"set_identifier": slot, "alias": alias_name(slot), "health_check_fqdn": slot_dns_name(slot)}
            for slot in SLOTS
        },
    }
)


@pytest.fixture
def sandbox(aws_sandbox, monkeypatch, wait_until):
    """The aws profile (8 checkers, propagation, TTL) scaled down; ``aws_default`` points at it.

    The stages' transitions follow each other here within milliseconds, not seconds apart as Airflow
    tasks do, so Route53's PriorRequestNotComplete spacing is off.
    """
    box = aws_sandbox(health_check_interval_scale=SCALE, dns_ttl_seconds=TTL, prior_request_seconds=0.0)
    for key, value in box.connection_env("aws_default").items():
        monkeypatch.setenv(key, value)
    wait_until(lambda: box.stats()["blue"]["requests"] > 0, what="traffic")
    return box


class Deployment:
    """One DAG run's stages, in order, against the sandbox."""

    def __init__(self, sandbox: Any, run_id: str) -> None:
        self.sandbox = sandbox
        self.run_id = run_id
        self.owner = f"bluegreen_deploy/{run_id}"
        self.svc = ServiceState(Route53Hook(aws_conn_id="aws_default"), sandbox.hosted_zone_id, SPEC)
        self.pct = 0

    def plan(self) -> None:
        weights = self.sandbox.weights()
        live = max(weights, key=weights.__getitem__)
        state, _ = acquire(self.svc, self.owner, live_versions=serving(self.sandbox, live), run_is_active=never)
        self.live, self.candidate = state.live, state.candidate

    def deploy(self, deploy_to: Any, release: str) -> None:
        self.release = deploy_to(self.sandbox, release, self.candidate)
        record_release(self.svc, self.owner, self.release)

    def health_check(self) -> str:
        """The health stage (no health_url: its HTTP probe is skipped); returns the check it created."""
        plan = Plan(
            spec=SPEC,
            zone_id=self.sandbox.hosted_zone_id,
            live=self.live,
            candidate=self.candidate,
            owner=self.owner,
            split_before=self.svc.weights(self.candidate, 0),
            live_versions={},
            candidate_versions_before={},
        ).to_dict()
        context = {
            "ti": SimpleNamespace(xcom_pull=lambda task_ids=None, **_: plan if task_ids == "plan" else None),
            "dag_run": SimpleNamespace(dag_id="bluegreen_deploy", run_id=self.run_id),
        }
        result = HealthCheckOperator(task_id="health_check", aws_conn_id="aws_default").execute(context)
        return result["route53_health_check_id"]

    def shift(self, pct: int, *, retention_seconds: int = 0) -> None:
        shift(
            self.svc,
            self.owner,
            pct,
            previous_pct=self.pct,
            serving=self.release,
            retention_seconds=retention_seconds,
        )
        self.pct = pct


def never(_: str) -> bool:
    return False


def serving(sandbox: Any, slot: str) -> dict[str, str]:
    lambda_ = sandbox.clients()("lambda")
    return {fn: lambda_.get_alias(FunctionName=fn, Name=alias_name(slot))["FunctionVersion"] for fn in FUNCTIONS}


def records(sandbox: Any) -> list[dict[str, Any]]:
    """The weighted sets of api.lego-mocs.com as Route53 (moto) lists them."""
    listed = sandbox.clients()("route53").list_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id)
    return [r for r in listed["ResourceRecordSets"] if r.get("SetIdentifier") in SLOTS]


def checks_on_records(sandbox: Any) -> dict[str, str | None]:
    return {r["SetIdentifier"]: r.get("HealthCheckId") for r in records(sandbox)}


def answers(sandbox: Any) -> dict[str, int]:
    """What Route53 answers with now, from the records in moto and the checkers' verdicts."""

    def healthy(check: str) -> bool:
        status = sandbox.health_check_status(check)
        return True if status is None else bool(status["healthy"])

    return answer_weights(records(sandbox), healthy)


def settled(sandbox: Any, wait_until: Any) -> None:
    """Every resolver answers from the latest change, and every cached answer from before has expired."""
    wait_until(lambda: sandbox.share_of_resolvers_on_latest_change() == 1.0, what="INSYNC everywhere")
    since = time.time()
    wait_until(lambda: time.time() > since + TTL + 0.5, what="one TTL")


def served_over(sandbox: Any, wait_until: Any, seconds: int = 3) -> dict[str, int]:
    """Requests each slot served over the next ``seconds`` whole seconds."""
    start = int(time.time()) + 1
    wait_until(lambda: time.time() >= start + seconds + 0.3, timeout=seconds + 5, what=f"{seconds} s of traffic")
    rows = [row for row in sandbox.served(start) if row["second"] < start + seconds]
    return {slot: sum(row[slot]["requests"] for row in rows) for slot in SLOTS}


def unhealthy(sandbox: Any, check: str) -> bool:
    status = sandbox.health_check_status(check)
    return status is not None and not status["healthy"]


def test_one_checker_region_failing_keeps_the_canary_its_traffic_a_real_outage_does_not(
    sandbox, wait_until, deploy_to
) -> None:
    run = Deployment(sandbox, "run1")
    run.plan()
    run.deploy(deploy_to, "v2")
    green = run.health_check()
    run.shift(10)
    assert checks_on_records(sandbox) == {"blue": None, "green": green}
    sandbox.fail_checker_region("ap-southeast-2")
    # None until the checkers have probed the new check once
    wait_until(
        lambda: ((sandbox.health_check_status(green) or {}).get("verdicts") or {}).get("ap-southeast-2") is False,
        what="region down",
    )
    settled(sandbox, wait_until)

    status = Route53Hook(aws_conn_id="aws_default").health_check_status(green)
    assert (status.healthy, status.checkers, status.failing) == (True, 8, 1)
    assert status.detail.startswith("1 of 8 checkers failing (ap-southeast-2: Failure: Connection timed out.")
    assert status.detail.endswith("healthy by Route53's rule (>18 % healthy)")
    served = served_over(sandbox, wait_until)
    assert 0.05 < served["green"] / (served["blue"] + served["green"]) < 0.2, served
    assert answers(sandbox) == {"blue": 90, "green": 10}

    for region in REGIONS:  # a real outage: no checker reaches the endpoint
        sandbox.fail_checker_region(region)
    wait_until(lambda: unhealthy(sandbox, green), timeout=20, what="green's check unhealthy")
    status = Route53Hook(aws_conn_id="aws_default").health_check_status(green)
    assert (status.healthy, status.checkers, status.failing) == (False, 8, 8)
    assert status.detail.startswith("8 of 8 checkers failing (")
    assert status.detail.endswith("); unhealthy by Route53's rule (>18 % healthy)")
    settled(sandbox, wait_until)
    assert answers(sandbox) == {"blue": 90}  # Route53 stops answering with the failing canary
    assert served_over(sandbox, wait_until)["green"] == 0


def test_a_failing_check_never_sends_traffic_to_the_weight_0_slot(sandbox, wait_until, deploy_to) -> None:
    run1 = Deployment(sandbox, "run1")
    run1.plan()
    run1.deploy(deploy_to, "v2")
    green = run1.health_check()
    for pct in (10, 50, 100):
        run1.shift(pct, retention_seconds=3600 if pct == 100 else 0)
    assert sandbox.weights() == {"blue": 0, "green": 100}
    assert checks_on_records(sandbox) == {"blue": None, "green": None}

    # After the promotion, blue (weight 0) is retained; green's own endpoint starts failing.
    deploy_to(sandbox, "unhealthy", "green")
    wait_until(lambda: unhealthy(sandbox, green), timeout=20, what="green's check unhealthy")
    status = Route53Hook(aws_conn_id="aws_default").health_check_status(green)
    assert not status.healthy and "HTTP Status Code 503" in status.detail
    settled(sandbox, wait_until)
    assert answers(sandbox) == {"green": 100}
    served = served_over(sandbox, wait_until)
    assert served["blue"] == 0 and served["green"] > 0, served

    # After teardown: blue is retired.
    retire(run1.svc, run1.owner, now=datetime.now(UTC) + timedelta(hours=2))
    settled(sandbox, wait_until)
    assert answers(sandbox) == {"green": 100}
    served = served_over(sandbox, wait_until)
    assert served["blue"] == 0 and served["green"] > 0, served

    # Mid-deployment: the next run's candidate blue has passed nothing but its health stage, at weight 0.
    run2 = Deployment(sandbox, "run2")
    run2.plan()
    assert (run2.live, run2.candidate) == ("green", "blue")
    run2.deploy(deploy_to, "v2")
    blue = run2.health_check()
    wait_until(lambda: sandbox.health_check_status(blue) is not None, what="blue's checkers")
    settled(sandbox, wait_until)
    assert unhealthy(sandbox, green) and not unhealthy(sandbox, blue)
    assert checks_on_records(sandbox) == {"blue": None, "green": None}
    assert answers(sandbox) == {"green": 100}
    served = served_over(sandbox, wait_until)
    assert served["blue"] == 0 and served["green"] > 0, served

    # At a canary step both sets carry their checks: with live's failing, Route53 answers with the
    # candidate alone, which passed its health stage and takes traffic at this step anyway.
    run2.shift(10)
    assert checks_on_records(sandbox) == {"blue": blue, "green": green}
    assert answers(sandbox) == {"blue": 10}

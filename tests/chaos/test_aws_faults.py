# ruff: noqa: F811
"""AWS faults: the real deployment DAG with a share of its AWS calls failing as AWS fails them.

A fault proxy (``bluegreen_provider/sandbox/faults.py``) sits between the DAG's ``aws_default``
connection and the sandbox's moto and answers a seeded share of the calls with throttling, 503, a
connection dropped before the request or after it applied, or a slow answer. botocore's standard
retries (the hooks' attempts per service) ride them out and the state's compare-and-swap recognises
a change whose answer was lost, so a good release still promotes and a bad one still rolls back.
Every change Route53 committed is read back from the sandbox's change history: no split outside the
declared steps and 100/0, and no generation applied twice.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from bluegreen_provider.sandbox import Sandbox
from bluegreen_provider.sandbox.faults import KINDS, FaultPlan
from bluegreen_provider.state import owner_of
from tests.chaos.route53_history import committed_splits, distinct, generations

# The e2e fixtures, requested by name below (hence the redefinitions ruff sees as F811).
from tests.e2e.conftest import FAST, deploy, deployment_state, e2e_bundle, sandbox, service_db  # noqa: F401

pytestmark = [pytest.mark.chaos("aws faults"), pytest.mark.e2e]

STEPS = [step["weight"] for step in FAST["steps"]]
BEFORE_TRAFFIC = ("plan", "deploy_green", "run_migrations", "health_check")
MIXED = FaultPlan(share=0.2, seed=13, slow_seconds=0.5)
# Route53's API limits as the aws profile has them, with the fast profile's timings otherwise.
ROUTE53_LIMITS: dict[str, Any] = {"throttling": True, "prior_request_seconds": 0.5, "propagation_seconds": 2.0}
# With propagation the shifts defer, and retries under Route53's limits can delay each step by
# seconds. Soaks of 10 s keep every window above min_requests.
LIMITS_STEPS = [
    {"weight": 10, "soak_seconds": 10},
    {"weight": 50, "soak_seconds": 10},
    {"weight": 100, "soak_seconds": 0},
]


def faults_seen(sandbox: Sandbox) -> dict[str, Any]:
    counts = sandbox.fault_counts()
    assert counts is not None and counts["faults"] > 0, counts
    beyond_default = sum(n for attempt, n in counts["attempts"].items() if attempt > 3)
    print(
        f"fault proxy: {counts['faults']} faults in {counts['requests']} AWS requests; by kind {counts['by_kind']}; "
        f"by service {counts['by_service']}; requests by botocore attempt {counts['attempts']} "
        f"({beyond_default} beyond botocore's default 3 attempts)"
    )
    return counts


def assert_promoted(result, sandbox: Sandbox, report_split) -> None:
    assert result.state == "success", result.states
    assert sandbox.weights() == {"blue": 0, "green": 100}
    state = deployment_state(sandbox)
    assert state.owner == owner_of(result.dag_id, result.run_id)
    # plan, deploy_green, health_check, shift_10, shift_50, shift_100, teardown_blue: each once
    assert (state.phase, state.generation, state.live) == ("retired", 7, "green"), state
    assert generations(sandbox.route53_changes()) == [1, 2, 3, 4, 5, 6, 7], "a generation applied twice or skipped"
    assert distinct(committed_splits(sandbox.route53_changes(), report_split, STEPS)) == [
        {"blue": 100, "green": 0},
        {"blue": 90, "green": 10},
        {"blue": 50, "green": 50},
        {"blue": 0, "green": 100},
    ]
    assert sandbox.stats()["green"]["errors"] == 0


def assert_rolled_back(result, sandbox: Sandbox, report_split) -> None:
    assert result.state == "failed", result.states
    for task in BEFORE_TRAFFIC:
        assert result.states[task] == "success", (task, result.states)  # AWS faults fail no stage
    failed = {task for task, state in result.states.items() if state == "failed"}
    assert failed and failed <= {"shift_10", "soak_10"}, result.states
    assert result.states["rollback"] == "success", result.states
    assert sandbox.weights() == {"blue": 100, "green": 0}
    state = deployment_state(sandbox)
    assert (state.phase, state.live, state.split) == ("rolled_back", "blue", {"blue": 100, "green": 0}), state
    assert state.reason.split(" ", 1)[0] in failed, state.reason
    splits = distinct(committed_splits(sandbox.route53_changes(), report_split, STEPS))
    assert splits == [{"blue": 100, "green": 0}, {"blue": 90, "green": 10}, {"blue": 100, "green": 0}], splits
    written = generations(sandbox.route53_changes())
    assert written == list(range(1, len(written) + 1)), written
    assert sandbox.stats()["green"]["errors"] > 0


# -- in the normal suite: one good release, one bad, at 20 % mixed faults -------------------------------


@pytest.mark.sandbox(faults=MIXED)
def test_a_good_release_promotes_with_a_fifth_of_aws_calls_failing(deploy, sandbox, report_split) -> None:
    result = deploy("v2")
    counts = faults_seen(sandbox)
    assert_promoted(result, sandbox, report_split)
    assert set(counts["by_kind"]) == set(KINDS), counts
    assert {"route53", "lambda", "monitoring"} <= set(counts["by_service"]), counts


@pytest.mark.sandbox(faults=MIXED)
def test_a_bad_release_rolls_back_with_a_fifth_of_aws_calls_failing(deploy, sandbox, report_split) -> None:
    result = deploy("bad")
    faults_seen(sandbox)
    assert_rolled_back(result, sandbox, report_split)


# -- slow: more seeds, lost answers on every other change batch, Route53's API limits ------------------


def seeded(*seeds: int) -> list:
    """One case per seed, each with its own sandbox at 20 % mixed faults."""
    return [
        pytest.param(seed, marks=pytest.mark.sandbox(faults=FaultPlan(share=0.2, seed=seed, slow_seconds=0.5)))
        for seed in seeds
    ]


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeded(1, 2, 3))
def test_a_good_release_promotes_at_20_percent_faults_whatever_the_seed(deploy, sandbox, report_split, seed) -> None:
    assert_promoted(deploy("v2"), sandbox, report_split)
    faults_seen(sandbox)


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeded(1, 2, 3))
def test_a_bad_release_rolls_back_at_20_percent_faults_whatever_the_seed(deploy, sandbox, report_split, seed) -> None:
    assert_rolled_back(deploy("bad"), sandbox, report_split)
    faults_seen(sandbox)


LOST_ANSWERS = FaultPlan(share=0.5, kinds=("drop_applied",), operations=("ChangeResourceRecordSets",), seed=21)


@pytest.mark.slow
@pytest.mark.sandbox(faults=LOST_ANSWERS)
def test_a_good_release_promotes_when_every_other_change_batch_loses_its_answer(deploy, sandbox, report_split) -> None:
    result = deploy("v2")
    lost = [f for f in sandbox.faults_injected() if f.kind == "drop_applied"]
    assert len(lost) >= 3, lost
    assert_promoted(result, sandbox, report_split)
    confirmed = [c for c in sandbox.route53_changes() if "landed, answer lost" in (c["comment"] or "")]
    assert confirmed, "no transition had to recognise its own change"


@pytest.mark.slow
@pytest.mark.sandbox(faults=LOST_ANSWERS)
def test_a_bad_release_rolls_back_when_every_other_change_batch_loses_its_answer(deploy, sandbox, report_split) -> None:
    result = deploy("bad")
    assert [f for f in sandbox.faults_injected() if f.kind == "drop_applied"]
    assert_rolled_back(result, sandbox, report_split)


@pytest.mark.slow
@pytest.mark.sandbox(faults=MIXED, **ROUTE53_LIMITS)
def test_a_good_release_promotes_under_route53_limits_and_faults(deploy, sandbox, report_split) -> None:
    result = deploy("v2", steps=LIMITS_STEPS)
    assert_promoted(result, sandbox, report_split)
    faults_seen(sandbox)
    throttling = sandbox.status()["throttling"]
    print(f"Route53 limits: {throttling}")
    assert throttling["enabled"]


@pytest.mark.slow
@pytest.mark.sandbox(faults=MIXED, **ROUTE53_LIMITS)
def test_a_bad_release_rolls_back_under_route53_limits_and_faults(deploy, sandbox, report_split) -> None:
    result = deploy("bad", steps=LIMITS_STEPS)
    assert_rolled_back(result, sandbox, report_split)
    faults_seen(sandbox)


@pytest.mark.sandbox(faults=MIXED)
def test_the_dag_connection_goes_through_the_proxy(sandbox) -> None:
    """The e2e fixtures wire the faults in: without this, every case above would test nothing."""
    extra = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]
    assert extra["endpoint_url"] == sandbox.aws_endpoint_url != sandbox.endpoint_url
    assert sandbox.faults == MIXED

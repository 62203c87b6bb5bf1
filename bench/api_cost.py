"""What a deployment costs in AWS API calls: the plan step, one soak poll, and a rollback, by operation.

Counted at botocore's single call site (``BaseClient._make_api_call``; a retry below it is not a
new call), on the calling thread only, so the sandbox's traffic and metrics are left out:

* **plan**: the real ``PlanDeploymentOperator.execute`` for the 4-function service (new operator,
  cold hooks, as a task process starts; not a dry run: it takes the lock).
* **soak poll**: one poll of the real soak (``SoakWatch.poll``) with the example service's rules:
  API Gateway error rate of green and blue, its three alarms, green's Route53 health check.
* **rollback**: the failure callback ``rollback_on_failure`` from 90/10 (a new hook, as a failing task has).

The whole deployment, through a real scheduler, is counted by ``worker_slots`` (at the fault proxy
every call of the deployment's connection passes through).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import (
    ApiCalls,
    BenchResult,
    aws_connection,
    deploy_to,
    failure_context,
    lego_plan,
    lego_spec,
    log,
    new_owner,
    spread,
)

NAME = "api_cost"
DEFAULT_REPS = 3
QUICK_REPS = 1


def _plan(sandbox: Any, spec: dict[str, Any], calls: ApiCalls) -> dict[str, int]:
    from bench import OWNER
    from bench.plan_latency import _context, _execute
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.operators.plan import PlanDeploymentOperator
    from bluegreen_provider.spec import DeploymentSpec
    from bluegreen_provider.state import ServiceState, rollback

    task = PlanDeploymentOperator(task_id="plan", spec=spec)
    calls.reset()
    _execute(task, _context(task))
    counted = calls.snapshot()
    svc = ServiceState(Route53Hook(aws_conn_id="aws_default"), sandbox.hosted_zone_id, DeploymentSpec.from_dict(spec))
    rollback(svc, OWNER, "bench: end of the plan repetition")  # the next plan takes the service afresh
    return counted


def _poll(sandbox: Any, plan: Any, health_check_id: str, calls: ApiCalls) -> dict[str, int]:
    from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.soak import Soak, SoakRules, SoakWatch, slot_query

    now = datetime.now(UTC)
    soak = Soak(
        stage_pct=10,
        candidate=slot_query(plan, "green"),
        baseline=slot_query(plan, "blue"),
        rules=SoakRules.from_plan(plan),
        watch_from=now - timedelta(seconds=60),
        soak_seconds=300,
        clock_start=now,
        health_check_id=health_check_id,
    )
    watch = SoakWatch(
        soak,
        cloudwatch=CloudWatchMetricsHook(aws_conn_id="aws_default"),
        route53=Route53Hook(aws_conn_id="aws_default"),
    )
    watch.poll(now)  # builds the clients
    calls.reset()
    breach = watch.poll(datetime.now(UTC))
    if breach is not None:
        raise AssertionError(f"a clean soak breached: {breach}")
    return calls.snapshot()


def _rollback(sandbox: Any, plan: Any, calls: ApiCalls) -> dict[str, int]:
    from bluegreen_provider.rollback import rollback_on_failure

    owner = new_owner()
    deploy_to(sandbox, plan, owner, 10)
    calls.reset()
    rollback_on_failure(failure_context(plan, owner))
    if sandbox.weights() != {"blue": 100, "green": 0}:
        raise AssertionError(f"the rollback left {sandbox.weights()}")
    return calls.snapshot()


def run(reps: int = DEFAULT_REPS, *, quick: bool = False) -> BenchResult:
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.sandbox import Sandbox

    del quick  # counts do not depend on scale: --quick only runs fewer repetitions
    result = BenchResult(NAME, {"reps": reps, "functions": 4, "alarms": 3, "metrics_source": "apigateway"})
    found: dict[str, list[dict[str, int]]] = {}
    with Sandbox(rate_per_second=20, flush_seconds=1) as sandbox, aws_connection(sandbox):
        spec = lego_spec(sandbox, metrics_source="apigateway")
        plan = lego_plan(sandbox, spec)
        health_check_id = Route53Hook(aws_conn_id="aws_default").ensure_health_check(
            caller_reference="bench-cost-green", fqdn="production-green.execute-api.us-east-1.amazonaws.com"
        )
        calls = ApiCalls()
        with calls.active():
            for i in range(reps):
                found.setdefault("plan", []).append(_plan(sandbox, spec, calls))
                found.setdefault("soak poll", []).append(_poll(sandbox, plan, health_check_id, calls))
                found.setdefault("rollback (failure callback)", []).append(_rollback(sandbox, plan, calls))
                log(f"{NAME}: rep {i + 1}/{reps}: " + ", ".join(f"{k} {sum(v[-1].values())}" for k, v in found.items()))
    operations = sorted({op for runs in found.values() for counted in runs for op in counted})
    rows = []
    for op in operations:
        rows.append([op, *[spread([counted.get(op, 0) for counted in runs]) for runs in found.values()]])
    rows.append(["**total**", *[spread([sum(c.values()) for c in runs]) for runs in found.values()]])
    result.table(
        "AWS API calls by operation (per step; median [min-max] over repetitions)", ["operation", *found], rows
    )
    for step, runs in found.items():
        result.add(f"{step}: AWS API calls", "calls", [sum(c.values()) for c in runs])
    result.details = {"calls": {step: [dict(Counter(c)) for c in runs] for step, runs in found.items()}}
    result.notes.append(
        "A soak at the default 30 s poll makes one such poll per 30 s: the 10 % (5 min) and 50 % (10 min) "
        "soaks with their settle wait (period + lag, 3 min each) poll about 50 times."
    )
    return result

"""How long the plan step takes for the 4-function lego-api, and how many AWS reads it makes.

Runs the real ``PlanDeploymentOperator.execute`` (not a dry run: it takes the service in the
deployment state record, as a real run does) with a minimal stand-in context (task instance with
XCom, DAG run ids). Between repetitions the run rolls itself back (its ``rollback`` transition,
untimed), so the next plan takes the service afresh. Two variants:

* new operator: fresh hooks and boto3 clients, as every task process of a real run starts;
* reused operator: hooks already built, so only our code and the API round trips are timed.

What it reads: zone by name, the weighted split, every function and both slots' aliases (each alias's
CodeSha256), version lists where the candidate does not already serve the zip, alarm states,
the deployment state record (read with the split). Against moto on loopback: on AWS each call is a real round trip.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

from bench import OWNER, ApiCalls, BenchResult, aws_connection, lego_spec, log

NAME = "plan_latency"
DEFAULT_REPS = 10


class _TI:
    """The slice of a task instance the plan operator touches."""

    task_id = "plan"
    map_index = -1

    def __init__(self) -> None:
        self.store: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.store[key] = json.loads(json.dumps(value))

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        return self.store.get(key)


def _execute(task: Any, context: dict[str, Any]) -> Any:
    """Call ``execute`` the way the task runner does (with its sentinel), so Airflow does not warn."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    return task.execute(context, **{f"{type(task).__name__}__sentinel": ExecutorSafeguard.sentinel_value})


def _context(task: Any) -> dict[str, Any]:
    dag_id, run_id = OWNER.split("/", 1)
    return {"ti": _TI(), "task": task, "dag_run": SimpleNamespace(dag_id=dag_id, run_id=run_id)}


def run(reps: int = DEFAULT_REPS, *, rate: float = 40.0, flush: float = 1.0) -> BenchResult:
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.operators.plan import PlanDeploymentOperator
    from bluegreen_provider.sandbox import Sandbox
    from bluegreen_provider.spec import DeploymentSpec
    from bluegreen_provider.state import Phase, ServiceState, rollback

    result = BenchResult(
        NAME,
        {"reps": reps, "functions": 4, "alarms": 3, "rate_per_s": rate, "flush_s": flush, "dry_run": False},
    )
    samples: dict[str, dict[str, list[float]]] = {}
    ops: dict[str, dict[str, int]] = {}

    with Sandbox(rate_per_second=rate, flush_seconds=flush) as sandbox, aws_connection(sandbox):
        spec = lego_spec(sandbox)
        svc = ServiceState(
            Route53Hook(aws_conn_id="aws_default"), sandbox.hosted_zone_id, DeploymentSpec.from_dict(spec)
        )

        def end_run() -> None:
            """The run rolls itself back (100 % stays on blue), so the next plan takes the service afresh."""
            state = rollback(svc, OWNER, "bench: next repetition").state
            if state.phase != Phase.ROLLED_BACK or state.split != {"blue": 100, "green": 0}:
                raise AssertionError(f"unexpected state after the plan: {state}")

        reused = PlanDeploymentOperator(task_id="plan", spec=spec)
        _execute(reused, _context(reused))  # builds its hooks; not measured
        end_run()
        calls = ApiCalls()
        with calls.active():
            for i in range(reps):
                for variant in ("new operator (cold hooks)", "reused operator (warm hooks)"):
                    task = PlanDeploymentOperator(task_id="plan", spec=spec) if variant.startswith("new") else reused
                    context = _context(task)
                    calls.reset()
                    started = time.perf_counter()
                    plan = _execute(task, context)
                    elapsed = time.perf_counter() - started
                    bucket = samples.setdefault(variant, {"total": [], "calls": [], "api": []})
                    bucket["total"].append(elapsed)
                    bucket["calls"].append(calls.total)
                    bucket["api"].append(calls.total_seconds)
                    ops[variant] = calls.snapshot()
                    if plan["live"] != "blue" or plan.get("resumed"):
                        raise AssertionError(f"unexpected plan: live={plan['live']}, resumed={plan.get('resumed')}")
                    end_run()
                log(f"{NAME}: rep {i + 1}/{reps}")
    for variant, bucket in samples.items():
        result.add(f"{variant}: execute()", "s", bucket["total"])
        result.add(f"{variant}: AWS API calls", "calls", bucket["calls"])
        result.add(f"{variant}: time inside API calls", "s", bucket["api"])
    result.details = {"api_calls_by_operation": ops}
    return result

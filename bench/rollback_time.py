"""How long our rollback code takes, and how many AWS calls it makes, from call to "live has 100 %".

Against moto every Route53 change is INSYNC at once, so this is our code path plus API round trips on
loopback, not Route53 propagation: on AWS add the time to INSYNC (typically under 60 s), observed in
``GetChange`` polls every ``poll_seconds`` (5 s by default, so up to 5 s more).

Variants (each ends with the split read back, independently of the code under test, as blue 100 / green 0):

* ``restore_live`` cold: a new ``Route53Hook``, as ``rollback_on_failure`` builds one per failing task.
* ``restore_live`` warm: the same hook reused (the rollback task's second, no-op-free call path).
* ``manual_rollback`` mid-deployment: the emergency DAG/CLI path, zone resolved by name, lock held.
* ``manual_rollback`` after promotion: green live, blue retained; 100 % back to blue, retention cleared.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import (
    OWNER,
    ApiCalls,
    BenchResult,
    aws_connection,
    lego_plan,
    lego_spec,
    log,
    set_weights,
    take_lock,
)

NAME = "rollback_time"
DEFAULT_REPS = 10


def _timed(calls: ApiCalls, sandbox: Any, action: Any) -> tuple[float, int, float, dict[str, int], Any]:
    """Run ``action``; stop the clock when the split reads back as blue 100 / green 0."""
    calls.reset()
    started = time.perf_counter()
    outcome = action()
    count, api_seconds, ops = calls.total, calls.total_seconds, calls.snapshot()
    weights = sandbox.weights()  # read back with the sandbox's own client: inside the clock, not counted
    elapsed = time.perf_counter() - started
    if weights != {"blue": 100, "green": 0}:
        raise AssertionError(f"rollback left {weights}")
    return elapsed, count, api_seconds, ops, outcome


def run(reps: int = DEFAULT_REPS, *, rate: float = 40.0, flush: float = 1.0) -> BenchResult:
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.records import DeploymentRecords
    from bluegreen_provider.rollback import manual_rollback, restore_live
    from bluegreen_provider.sandbox import Sandbox

    result = BenchResult(NAME, {"reps": reps, "rate_per_s": rate, "flush_s": flush, "split_before": "90/10"})
    samples: dict[str, dict[str, list[float]]] = {}
    breakdown: dict[str, dict[str, int]] = {}

    def record(variant: str, measured: tuple[float, int, float, dict[str, int], Any]) -> None:
        elapsed, count, api_seconds, ops, _ = measured
        bucket = samples.setdefault(variant, {"total": [], "calls": [], "api": []})
        bucket["total"].append(elapsed)
        bucket["calls"].append(count)
        bucket["api"].append(api_seconds)
        breakdown[variant] = ops

    with Sandbox(rate_per_second=rate, flush_seconds=flush) as sandbox, aws_connection(sandbox):
        plan = lego_plan(sandbox, lego_spec(sandbox))
        spec = plan.spec
        warm = Route53Hook(aws_conn_id="aws_default")
        warm.get_split(plan.zone_id, spec.record_name, spec.record_type, ["blue", "green"])  # build its client
        records = DeploymentRecords(warm, plan.zone_id, spec)
        calls = ApiCalls()
        with calls.active():
            for i in range(reps):
                for variant, make_hook in (("restore_live (new hook)", None), ("restore_live (reused hook)", warm)):
                    set_weights(sandbox, 90, 10)
                    take_lock(plan)

                    def action(hook: Any = make_hook) -> Any:
                        route53 = hook or Route53Hook(aws_conn_id="aws_default")
                        return restore_live(route53, plan, reason="bench", owner=OWNER)

                    record(variant, _timed(calls, sandbox, action))

                set_weights(sandbox, 90, 10)
                take_lock(plan)
                record(
                    "manual_rollback (mid-deployment)",
                    _timed(
                        calls,
                        sandbox,
                        lambda: manual_rollback(Route53Hook(aws_conn_id="aws_default"), spec, reason="bench"),
                    ),
                )

                set_weights(sandbox, 0, 100)
                records.retain("blue", datetime.now(UTC) + timedelta(hours=1), OWNER)
                record(
                    "manual_rollback (after promotion)",
                    _timed(
                        calls,
                        sandbox,
                        lambda: manual_rollback(Route53Hook(aws_conn_id="aws_default"), spec, reason="bench"),
                    ),
                )
                log(f"{NAME}: rep {i + 1}/{reps}")

    for variant, bucket in samples.items():
        result.add(f"{variant}: call -> split read back", "s", bucket["total"])
        result.add(f"{variant}: AWS API calls", "calls", bucket["calls"])
        result.add(f"{variant}: time inside API calls", "s", bucket["api"])
    result.details = {"api_calls_by_operation": breakdown}
    result.notes.append(
        "moto reports every change INSYNC at once: these times are our code + loopback round trips. On AWS, "
        "add Route53 propagation to INSYNC, polled every poll_seconds=5 (rollback_on_failure's default)."
    )
    return result

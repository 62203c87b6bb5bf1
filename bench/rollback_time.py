"""How long our rollback code takes, and how many AWS calls it makes, from call to "live has 100 %".

The clock stops when the split reads back restored, not at INSYNC, so this is our code path plus API
round trips on loopback, not Route53 propagation: on AWS add the time to INSYNC (typically under 60 s),
which the ``rollback`` task waits for in ``GetChange`` polls every ``poll_seconds``.

Variants (each from a run of its own at 90/10, set up through the stages' transitions; each ends with
the split read back, independently of the code under test, as blue 100 / green 0):

* ``rollback_on_failure``: the failure callback itself, which builds a new ``Route53Hook`` per failing
  task and sends the run's compare-and-swap rollback.
* ``state.rollback`` warm: the same transition with a hook reused (the rollback task's path).
* ``emergency_rollback`` mid-deployment: the emergency DAG/CLI path, zone resolved by name.
* ``emergency_rollback`` after promotion: green live, blue retained; 100 % back to blue (its aliases
  are checked to still serve the retained release), retention cleared.
"""

from __future__ import annotations

import time
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
    from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.rollback import emergency_rollback, rollback_on_failure
    from bluegreen_provider.sandbox import Sandbox
    from bluegreen_provider.state import Phase, ServiceState, rollback

    result = BenchResult(NAME, {"reps": reps, "rate_per_s": rate, "flush_s": flush, "split_before": "90/10"})
    samples: dict[str, dict[str, list[float]]] = {}
    breakdown: dict[str, dict[str, int]] = {}

    def record(variant: str, measured: tuple[float, int, float, dict[str, int], Any], phase: Phase) -> None:
        elapsed, count, api_seconds, ops, _ = measured
        recorded = ServiceState(warm, plan.zone_id, spec).state()
        if recorded is None or recorded.phase != phase:
            raise AssertionError(f"{variant}: the state record reads {recorded}, expected {phase}")
        bucket = samples.setdefault(variant, {"total": [], "calls": [], "api": []})
        bucket["total"].append(elapsed)
        bucket["calls"].append(count)
        bucket["api"].append(api_seconds)
        breakdown[variant] = ops

    def emergency() -> Any:
        hook = Route53Hook(aws_conn_id="aws_default")
        return emergency_rollback(hook, LambdaAliasHook(aws_conn_id="aws_default"), spec, by="bench", reason="bench")

    with Sandbox(rate_per_second=rate, flush_seconds=flush) as sandbox, aws_connection(sandbox):
        plan = lego_plan(sandbox, lego_spec(sandbox))
        spec = plan.spec
        warm = Route53Hook(aws_conn_id="aws_default")
        warm.get_split(plan.zone_id, spec.record_name, spec.record_type, ["blue", "green"])  # build its client
        calls = ApiCalls()
        with calls.active():
            for i in range(reps):
                owner = new_owner()
                deploy_to(sandbox, plan, owner, 10)
                context = failure_context(plan, owner)
                measured = _timed(calls, sandbox, lambda context=context: rollback_on_failure(context))
                record("rollback_on_failure (new hook)", measured, Phase.ROLLED_BACK)

                owner = new_owner()
                deploy_to(sandbox, plan, owner, 10)
                svc = ServiceState(warm, plan.zone_id, spec)
                measured = _timed(calls, sandbox, lambda svc=svc, owner=owner: rollback(svc, owner, "bench"))
                record("state.rollback (reused hook)", measured, Phase.ROLLED_BACK)

                deploy_to(sandbox, plan, new_owner(), 10)
                record("emergency_rollback (mid-deployment)", _timed(calls, sandbox, emergency), Phase.ABORTED)

                deploy_to(sandbox, plan, new_owner(), 100, retention_seconds=3600)
                record("emergency_rollback (after promotion)", _timed(calls, sandbox, emergency), Phase.ABORTED)
                log(f"{NAME}: rep {i + 1}/{reps}")

    for variant, bucket in samples.items():
        result.add(f"{variant}: call -> split read back", "s", bucket["total"])
        result.add(f"{variant}: AWS API calls", "calls", bucket["calls"])
        result.add(f"{variant}: time inside API calls", "s", bucket["api"])
    result.details = {"api_calls_by_operation": breakdown}
    result.notes.append(
        "The clock stops when the split reads back restored, not at INSYNC: these times are our code + loopback "
        "round trips. On AWS add Route53 propagation to INSYNC, which the rollback task waits for on the "
        "triggerer (polled every poll_seconds)."
    )
    return result

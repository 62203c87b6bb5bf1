"""How many users a bad canary hurts before the rollback: failed green requests, shift -> traffic restored.

Per repetition: green serves the ``bad`` release (30 % of its requests fail), a new run takes the
service and records the release through the plan and deploy transitions, then at T it shifts 10 %
(the real ``shift`` transition); the real ``ErrorRateTrigger`` soaks it with the given poll interval
and, at its breach event, the failure callback ``rollback_on_failure`` runs (it builds a new hook and
sends the run's compare-and-swap rollback). Failed requests are the sandbox's own count of 5XX answers from green
between T and the moment the traffic simulator stops sending to green (its weight cache is 1 s,
standing in for DNS caching, which on AWS is the record's TTL).

The soak watches the error-rate rule only (no alarms): the seeded alarms are sized not to fire at
10 %, so the error rate is what must catch a canary, and leaving alarms out keeps repetitions
independent without waiting for each alarm's window to drain.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from bench import (
    BenchResult,
    aws_connection,
    deploy_to,
    failure_context,
    first_event,
    green_tally,
    lego_plan,
    lego_spec,
    log,
    new_owner,
    point_slot,
    publish_release,
    slot_serving,
    soak_trigger,
    wait_until,
)

NAME = "blast_radius"
DEFAULT_REPS = 2
ROUTER_REFRESH_SECONDS = 1.0  # the sandbox router's weight cache (sandbox/routing.py)


def _rep(sandbox: Any, plan: Any, *, poll: float, min_requests: int, timeout: float) -> dict[str, Any]:
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.rollback import rollback_on_failure
    from bluegreen_provider.state import Phase, ServiceState, shift

    owner = new_owner()
    svc = deploy_to(sandbox, plan, owner)
    serving = slot_serving(sandbox, plan.candidate)
    context = failure_context(plan, owner)
    before = green_tally(sandbox)
    shift(svc, owner, 10, previous_pct=0, serving=serving)
    shifted = time.monotonic()
    trigger = soak_trigger(
        datetime.now(UTC), poll_interval=poll, min_requests=min_requests, alarms=(), soak_seconds=timeout
    )
    event, seen = asyncio.run(first_event(trigger, timeout))
    rollback_on_failure(context)
    restored = time.monotonic()
    state = ServiceState(Route53Hook(aws_conn_id="aws_default"), plan.zone_id, plan.spec).state()
    if sandbox.weights() != {"blue": 100, "green": 0} or state is None or state.phase != Phase.ROLLED_BACK:
        raise AssertionError(f"the rollback left {sandbox.weights()}, state {state}")
    at_restore = green_tally(sandbox)
    # Green stops taking requests once the router's cache has seen the restored weights.
    time.sleep(ROUTER_REFRESH_SECONDS + 0.5)
    after = green_tally(sandbox)
    wait_until(lambda: green_tally(sandbox) == after, timeout=5, what="green traffic to stop", interval=0.5)
    return {
        "status": event.get("status"),
        "rule": event.get("rule"),
        "detect_s": seen - shifted,
        "restore_s": restored - seen,
        "exposure_s": restored - shifted,
        "green_requests": after[0] - before[0],
        "failed_5xx": after[1] - before[1],
        "function_errors": after[2] - before[2],
        "failed_after_restore": after[1] - at_restore[1],
        "rolled_back": True,
        "generation": state.generation,
    }


def run(
    reps: int = DEFAULT_REPS,
    *,
    intervals: list[float] | None = None,
    rate: float = 40.0,
    flush: float = 1.0,
    min_requests: int = 20,
    timeout: float = 60.0,
) -> BenchResult:
    from bluegreen_provider.sandbox import Sandbox

    intervals = intervals or [1.0, 2.0, 5.0]
    result = BenchResult(
        NAME,
        {
            "reps": reps,
            "poll_intervals_s": intervals,
            "rate_per_s": rate,
            "flush_s": flush,
            "green_share_pct": 10,
            "bad_release_fail_pct": 30,
            "threshold_pct": 5.0,
            "min_requests": min_requests,
            "alarms_watched": [],
        },
    )
    runs: dict[str, list[dict[str, Any]]] = {}
    with Sandbox(rate_per_second=rate, flush_seconds=flush) as sandbox, aws_connection(sandbox):
        plan = lego_plan(sandbox, lego_spec(sandbox))
        point_slot(sandbox, "green", publish_release(sandbox, "bad"))
        for poll in intervals:
            key = f"poll {poll:g} s"
            for i in range(reps):
                runs.setdefault(key, []).append(
                    _rep(sandbox, plan, poll=poll, min_requests=min_requests, timeout=timeout)
                )
                log(f"{NAME}: {key} rep {i + 1}/{reps}: {runs[key][-1]}")
    for key, items in runs.items():
        good = [r for r in items if r["status"] == "breach"]
        result.add(f"{key}: failed requests (5XX on green)", "req", [r["failed_5xx"] for r in good])
        result.add(f"{key}: green requests served", "req", [r["green_requests"] for r in good])
        result.add(f"{key}: shift -> traffic restored", "s", [r["exposure_s"] for r in good])
        result.add(f"{key}: of which breach -> rollback_on_failure done", "s", [r["restore_s"] for r in good])
    result.details = {"runs": runs}
    expected = rate * 0.10 * 0.30
    result.notes.append(
        f"Expected failures ≈ {expected:g}/s of exposure ({rate:g} req/s x 10 % x 30 %) plus ~1 s of router "
        "cache after the restore. Not included: the triggerer -> worker hop before the failure callback runs, "
        "Route53 propagation (moto is INSYNC at once) and DNS TTL on AWS."
    )
    return result

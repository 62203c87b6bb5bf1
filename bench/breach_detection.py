"""How long the soak takes to notice a bad canary: the first half of "rollback time" the story never names.

Two cases, each through the real ``ErrorRateTrigger.run()`` against the sandbox:

* ``bad release``: green serves the ``bad`` release (30 % of requests fail) and takes 10 % of the
  traffic at T (Route53 90/10); latency = T -> the trigger's breach event. It covers the sandbox
  router's 1 s weight cache, the flush of metrics to CloudWatch, ``min_requests`` green requests
  accumulating, and the poll interval.
* ``forced alarm``: green serves a clean release at 10 %, the trigger is polling, and at T (random
  phase within the poll interval) an alarm is forced to ALARM; latency = T -> breach event.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench import (
    LEGO_ALARMS,
    BenchResult,
    aws_connection,
    first_event,
    green_tally,
    log,
    point_slot,
    publish_release,
    set_weights,
    soak_trigger,
    wait_alarms_quiet,
)

NAME = "breach_detection"
DEFAULT_REPS = 3
WARMUP_SECONDS = 1.5  # the trigger's first poll builds its hook and client; force alarms after that


async def _bad_release_rep(sandbox: Any, *, poll: float, min_requests: int, timeout: float) -> dict[str, Any]:
    """Shift 10 % to the bad release and wait for the breach; watch the in-memory counters meanwhile."""
    requests_before, errors_before, _ = green_tally(sandbox)
    await asyncio.to_thread(set_weights, sandbox, 90, 10)
    shifted = time.monotonic()
    trigger = soak_trigger(datetime.now(UTC), poll_interval=poll, min_requests=min_requests, soak_seconds=timeout)
    waiting = asyncio.create_task(first_event(trigger, timeout))
    first_request: float | None = None
    first_error: float | None = None
    while not waiting.done():  # bounded: first_event gives up after ``timeout``
        requests, errors, _ = green_tally(sandbox)
        if first_request is None and requests > requests_before:
            first_request = time.monotonic()
        if first_error is None and errors > errors_before:
            first_error = time.monotonic()
        await asyncio.sleep(0.02)
    event, seen = waiting.result()
    await asyncio.to_thread(set_weights, sandbox, 100, 0)
    figures = event.get("figures", {})
    return {
        "latency_s": seen - shifted,
        "first_request_s": None if first_request is None else first_request - shifted,
        "first_error_s": None if first_error is None else first_error - shifted,
        "status": event.get("status"),
        "rule": event.get("rule"),
        "message": event.get("message"),
        "requests_at_breach": figures.get("requests"),
        "errors_at_breach": figures.get("errors"),
    }


async def _alarm_rep(sandbox: Any, *, poll: float, alarm: str, jitter: float, timeout: float) -> dict[str, Any]:
    """Force ``alarm`` at a random moment of a running soak and wait for the breach."""
    trigger = soak_trigger(datetime.now(UTC), poll_interval=poll, soak_seconds=timeout)
    waiting = asyncio.create_task(first_event(trigger, timeout))
    await asyncio.sleep(WARMUP_SECONDS + jitter)
    if waiting.done():
        event, _ = waiting.result()
        return {"latency_s": None, "status": event.get("status"), "rule": event.get("rule"), "premature": True}
    forced = time.monotonic()
    await asyncio.to_thread(sandbox.force_alarm, alarm, "ALARM", "forced by bench.breach_detection")
    try:
        event, seen = await waiting
    finally:
        await asyncio.to_thread(sandbox.release_alarm, alarm)
    return {
        "latency_s": seen - forced,
        "status": event.get("status"),
        "rule": event.get("rule"),
        "message": event.get("message"),
    }


def run(
    reps: int = DEFAULT_REPS,
    *,
    rate: float = 40.0,
    flush: float = 1.0,
    poll: float = 1.0,
    min_requests: int = 20,
    alarm: str = LEGO_ALARMS[0],
    timeout: float = 60.0,
    seed: int = 7,
    alarm_reps: int | None = None,
) -> BenchResult:
    from bluegreen_provider.sandbox import Sandbox
    from bluegreen_provider.sandbox.world import FUNCTIONS

    result = BenchResult(
        NAME,
        {
            "reps": reps,
            "rate_per_s": rate,
            "flush_s": flush,
            "poll_interval_s": poll,
            "green_share_pct": 10,
            "threshold_pct": 5.0,
            "min_requests": min_requests,
            "window_s": 300,
            "period_s": 60,
            "alarms_watched": list(LEGO_ALARMS),
            "forced_alarm": alarm,
        },
    )
    alarm_reps = 2 * reps if alarm_reps is None else alarm_reps  # cheap (~3 s each): take more
    result.params["alarm_reps"] = alarm_reps
    rng = random.Random(seed)
    with Sandbox(rate_per_second=rate, flush_seconds=flush, seed=seed) as sandbox, aws_connection(sandbox):
        good = dict.fromkeys(FUNCTIONS, "1")  # the seeded version 1 runs release v1
        bad = publish_release(sandbox, "bad")

        alarm_runs = []
        point_slot(sandbox, "green", good)
        set_weights(sandbox, 90, 10)
        for i in range(alarm_reps):
            wait_alarms_quiet(sandbox)
            jitter = rng.uniform(0, poll)
            alarm_runs.append(asyncio.run(_alarm_rep(sandbox, poll=poll, alarm=alarm, jitter=jitter, timeout=timeout)))
            log(f"{NAME}: forced alarm rep {i + 1}/{alarm_reps}: {alarm_runs[-1]}")

        bad_runs = []
        set_weights(sandbox, 100, 0)
        point_slot(sandbox, "green", bad)
        for i in range(reps):
            # Independent repetitions: the last one's errors must have left every alarm's window
            # (else an alarm, not this shift, trips the soak) and the router must see green at 0.
            time.sleep((sandbox.alarm_period if i else 1.0) + flush)
            wait_alarms_quiet(sandbox)
            bad_runs.append(
                asyncio.run(_bad_release_rep(sandbox, poll=poll, min_requests=min_requests, timeout=timeout))
            )
            log(f"{NAME}: bad release rep {i + 1}/{reps}: {bad_runs[-1]}")
        set_weights(sandbox, 100, 0)

    def ok(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in runs if r.get("status") == "breach" and r.get("latency_s") is not None]

    result.add(
        "bad release at 10 % -> breach event",
        "s",
        [r["latency_s"] for r in ok(bad_runs)],
        "shift to 90/10 until the trigger yields its breach",
    )
    result.add(
        "  of which: shift -> first green request",
        "s",
        [r["first_request_s"] for r in ok(bad_runs) if r["first_request_s"] is not None],
        "sandbox router re-reads weights every 1 s (stands in for DNS)",
    )
    result.add(
        "  of which: shift -> first failed request",
        "s",
        [r["first_error_s"] for r in ok(bad_runs) if r["first_error_s"] is not None],
        "",
    )
    result.add(
        "forced alarm -> breach event",
        "s",
        [r["latency_s"] for r in ok(alarm_runs)],
        "alarm set to ALARM at a random phase of the poll",
    )
    misses = [r for r in bad_runs + alarm_runs if r not in ok(bad_runs) + ok(alarm_runs)]
    result.details = {
        "rules_fired_bad_release": dict(Counter(str(r.get("rule")) for r in bad_runs)),
        "bad_release": bad_runs,
        "forced_alarm": alarm_runs,
        "misses": len(misses),
    }
    result.notes.append(
        "Detection only: the triggerer -> scheduler -> worker hop that turns the event into the failure "
        "callback's rollback is not included (Airflow's own latency, typically seconds)."
    )
    others = [r for r in ok(bad_runs) if r.get("rule") != "error_rate"]
    if others:
        result.notes.append(
            f"{len(others)} bad-release breach(es) came from another rule first ({others[0].get('message')}); "
            "details.bad_release lists each"
        )
    result.notes.append(
        "No Route53 health check in these soaks: moto's health checks always report success, so that rule "
        "could not fire here."
    )
    if misses:
        result.notes.append(f"{len(misses)} repetition(s) ended without a breach event: see details")
    return result

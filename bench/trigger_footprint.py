"""What N concurrent soaks cost a triggerer: memory, CPU per poll, and whether polls keep their pace.

N ``ErrorRateTrigger``s (lego-api green at 10 %, clean release, every rule on: error rate, three
alarms, the green set's Route53 health check; poll every second) run in one asyncio loop, as the
triggerer runs them. They run in a child process so that the figures are the triggerer's alone:
moto and the traffic simulator stay in the parent. Per N the child reports

* RSS before the triggers start (Airflow + providers imported) and the peak while they run;
* Python heap retained per trigger after its first poll (tracemalloc, with at most ``TRACED_MAX``
  triggers, in a separate phase so
  tracing does not slow the CPU measurement);
* steady-state CPU seconds per poll and the achieved poll period (after a warm-up that builds the
  hooks' clients), poll latency, and the event loop's worst lag (Airflow warns when it is blocked).

Polls run in ``asyncio.to_thread`` (the trigger's own choice), i.e. on the loop's default executor:
min(32, CPUs + 4) = 6 threads on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench import (
    ApiCalls,
    BenchResult,
    airflow_env,
    aws_connection,
    log,
    set_weights,
    soak_trigger,
    summarize,
)

NAME = "trigger_footprint"
DEFAULT_REPS = 1
WARMUP_TIMEOUT = 120.0  # bounded wait for every trigger's first poll (each builds boto3 clients)
TRACED_MAX = 10  # triggers in the tracemalloc phase (tracing makes client creation ~2x slower)


def _proc_status() -> dict[str, int]:
    """VmRSS / VmHWM of this process in KiB."""
    with open("/proc/self/status") as handle:
        text = handle.read()
    return {key: int(re.search(rf"{key}:\s+(\d+)", text).group(1)) for key in ("VmRSS", "VmHWM")}  # type: ignore[union-attr]


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak is this run's."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class _PollClock:
    """Wraps ``SoakWatch.poll`` to time every poll; the trigger itself is unchanged."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.count = 0
        self.watches: set[int] = set()
        self.starts: dict[int, list[float]] = {}

    def periods(self, since: float, until: float) -> list[float]:
        """Time between consecutive poll starts of the same trigger, within [since, until]."""
        out = []
        for starts in self.starts.values():
            inside = [t for t in starts if since <= t <= until]
            out += [b - a for a, b in itertools.pairwise(inside)]
        return out

    def install(self) -> None:
        from bluegreen_provider.soak import SoakWatch

        original = SoakWatch.poll
        clock = self

        def timed(watch: Any, now: datetime) -> Any:
            started = time.perf_counter()
            clock.starts.setdefault(id(watch), []).append(started)
            try:
                return original(watch, now)
            finally:
                clock.durations.append(time.perf_counter() - started)
                clock.count += 1
                clock.watches.add(id(watch))

        SoakWatch.poll = timed  # type: ignore[method-assign]


async def _consume(trigger: Any, events: list[dict[str, Any]]) -> None:
    async for event in trigger.run():
        events.append(event.payload)
        return


async def _loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    """Sleep 0.1 s at a time and record how late the loop wakes us (bounded by ``stop``)."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.1)
        lags.append(time.perf_counter() - started - 0.1)


async def _all_polled(clock: _PollClock, n: int) -> None:
    """Wait until every one of the ``n`` live triggers has finished a poll (bounded)."""
    deadline = time.monotonic() + WARMUP_TIMEOUT
    while len(clock.watches) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(clock.watches)} of {n} triggers polled within {WARMUP_TIMEOUT:g} s")
        await asyncio.sleep(0.05)


async def _steady(n: int, seconds: float, poll: float, health_check_id: str | None, clock: _PollClock) -> dict:
    events: list[dict[str, Any]] = []
    lags: list[float] = []
    stop = asyncio.Event()
    lag_task = asyncio.create_task(_loop_lag(lags, stop))
    start = datetime.now(UTC)
    triggers = [
        soak_trigger(start, poll_interval=poll, soak_seconds=seconds + 60, health_check_id=health_check_id)
        for _ in range(n)
    ]
    tasks = [asyncio.create_task(_consume(t, events)) for t in triggers]
    warm_started = time.perf_counter()
    await _all_polled(clock, n)
    await asyncio.sleep(poll)  # let the slowest trigger's next poll start from a warm client
    warmup = time.perf_counter() - warm_started
    polls0, cpu0, wall0 = clock.count, time.process_time(), time.perf_counter()
    durations0, lags0 = len(clock.durations), len(lags)
    await asyncio.sleep(seconds)
    polls1, cpu1, wall1 = clock.count, time.process_time(), time.perf_counter()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    stop.set()
    await lag_task
    steady_polls = polls1 - polls0
    window = wall1 - wall0
    return {
        "steady_seconds": window,
        "steady_polls": steady_polls,
        "cpu_s_per_poll": (cpu1 - cpu0) / steady_polls if steady_polls else None,
        "cpu_util_pct": 100 * (cpu1 - cpu0) / window,
        "poll_period_s": summarize(clock.periods(wall0, wall1)),
        "poll_latency_s": summarize(clock.durations[durations0:]),
        "loop_lag_s": summarize(lags[lags0:]),
        "warmup_s": warmup,
        "warmup_loop_lag_s": summarize(lags[:lags0]),
        "events": [e.get("status") for e in events],
    }


def child(n: int, seconds: float, poll: float, health_check_id: str | None) -> dict[str, Any]:
    """Runs in the child process: steady phase (RSS, CPU), then a traced phase (heap per trigger)."""
    import tracemalloc

    airflow_env()
    import bluegreen_provider.triggers.error_rate  # noqa: F401  (import cost is baseline, not per trigger)

    clock = _PollClock()
    clock.install()
    calls = ApiCalls(include=lambda _thread: True)
    gc.collect()
    baseline = _proc_status()["VmRSS"]
    peak_reset = _reset_peak_rss()
    with calls.active():
        steady = asyncio.run(_steady(n, seconds, poll, health_check_id, clock))
    status = _proc_status()
    per_poll_calls = calls.total / clock.count if clock.count else None
    api_ops = calls.snapshot()

    # Heap retained by N live triggers after their first polls (tracing slows everything: own phase).
    traced_n = min(n, TRACED_MAX)
    clock.watches.clear()
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    loop = asyncio.new_event_loop()
    try:
        traced = loop.run_until_complete(_measure_retained(traced_n, poll, health_check_id, clock))
    finally:
        loop.close()
    tracemalloc.stop()
    return {
        "n": n,
        "rss_baseline_mib": baseline / 1024,
        "rss_peak_mib": status["VmHWM"] / 1024 if peak_reset else None,
        "rss_end_mib": status["VmRSS"] / 1024,
        "rss_peak_delta_mib": (status["VmHWM"] - baseline) / 1024 if peak_reset else None,
        "traced_triggers": traced_n,
        "heap_retained_per_trigger_kib": (traced["current"] - before) / 1024 / traced_n,
        "heap_peak_per_trigger_kib": (traced["peak"] - before) / 1024 / traced_n,
        "api_calls_per_poll": per_poll_calls,
        "api_calls": api_ops,
        "executor_threads": min(32, (os.cpu_count() or 1) + 4),
        **steady,
    }


async def _measure_retained(n: int, poll: float, health_check_id: str | None, clock: _PollClock) -> dict[str, int]:
    """Start N triggers under tracemalloc, let each poll, read the traced heap while they are all alive."""
    import tracemalloc

    triggers = [
        soak_trigger(datetime.now(UTC), poll_interval=poll, soak_seconds=600, health_check_id=health_check_id)
        for _ in range(n)
    ]
    tasks = [asyncio.create_task(_consume(t, [])) for t in triggers]
    await _all_polled(clock, n)
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"current": current, "peak": peak}


def run(
    reps: int = DEFAULT_REPS,
    *,
    counts: list[int] | None = None,
    seconds: float = 6.0,
    poll: float = 1.0,
    rate: float = 40.0,
    flush: float = 1.0,
) -> BenchResult:
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.sandbox import Sandbox

    counts = counts or [1, 10, 50]
    result = BenchResult(
        NAME,
        {
            "reps": reps,
            "triggers": counts,
            "run_s": seconds,
            "traced_triggers_max": TRACED_MAX,
            "poll_interval_s": poll,
            "rate_per_s": rate,
            "flush_s": flush,
            "rules": "error rate + 3 alarms + Route53 health check",
        },
    )
    children: dict[str, list[dict[str, Any]]] = {}
    with Sandbox(rate_per_second=rate, flush_seconds=flush) as sandbox, aws_connection(sandbox):
        set_weights(sandbox, 90, 10)  # green serves v1 (clean): every poll reads real data, none breaches
        health_check_id = Route53Hook(aws_conn_id="aws_default").ensure_health_check(
            caller_reference="bench-green", fqdn="production-green.execute-api.us-east-1.amazonaws.com"
        )
        env = {**os.environ, **sandbox.connection_env("aws_default")}
        for _ in range(reps):
            for n in counts:
                args = json.dumps({"n": n, "seconds": seconds, "poll": poll, "health_check_id": health_check_id})
                parent_cpu = time.process_time()
                done = subprocess.run(
                    [sys.executable, "-m", "bench.trigger_footprint", "--child", args],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=seconds + 2 * WARMUP_TIMEOUT + 60,
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"child for N={n} failed:\n{done.stderr[-3000:]}")
                report = json.loads(done.stdout.strip().splitlines()[-1])
                report["parent_cpu_s"] = time.process_time() - parent_cpu
                children.setdefault(str(n), []).append(report)
                log(
                    f"{NAME}: N={n}: peak RSS +{report['rss_peak_delta_mib']:.1f} MiB, "
                    f"{report['cpu_s_per_poll'] * 1000:.1f} ms CPU/poll, "
                    f"poll period median {report['poll_period_s']['median']:.2f} s"
                )
    for n, reports in children.items():
        result.add(f"N={n}: peak RSS over baseline", "MiB", [r["rss_peak_delta_mib"] for r in reports])
        result.add(
            f"N={n}: heap retained per trigger (traced {min(int(n), TRACED_MAX)})",
            "KiB",
            [r["heap_retained_per_trigger_kib"] for r in reports],
        )
        result.add(f"N={n}: CPU per poll (steady)", "ms", [1000 * r["cpu_s_per_poll"] for r in reports])
        result.add(f"N={n}: triggerer CPU use", "%", [r["cpu_util_pct"] for r in reports])
        result.add(
            f"N={n}: poll start -> next poll start, median (target {poll:g})",
            "s",
            [r["poll_period_s"]["median"] for r in reports],
        )
        result.add(f"N={n}: poll start -> next poll start, max", "s", [r["poll_period_s"]["max"] for r in reports])
        result.add(f"N={n}: warm-up (all triggers' first poll)", "s", [r["warmup_s"] for r in reports])
        result.add(f"N={n}: event loop lag max, warm-up", "s", [r["warmup_loop_lag_s"]["max"] for r in reports])
        result.add(f"N={n}: poll latency p95", "s", [r["poll_latency_s"]["p95"] for r in reports])
        result.add(f"N={n}: event loop lag max, steady", "s", [r["loop_lag_s"]["max"] for r in reports])
    result.details = {"children": children, "rss_baseline_mib": children[str(counts[0])][0]["rss_baseline_mib"]}
    result.notes.append(
        "Poll latency and the achieved period include moto's service time (moto and the traffic run in the "
        "parent on the same 2 CPUs); CPU per poll and memory are the child's (the triggerer's) own."
    )
    return result


def _main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True)
    args = json.loads(parser.parse_args().child)
    print(json.dumps(child(args["n"], args["seconds"], args["poll"], args.get("health_check_id"))))
    return 0


if __name__ == "__main__":
    sys.exit(_main())

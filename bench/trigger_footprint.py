"""What N concurrent soaks cost a triggerer: memory, CPU per poll, and whether polls keep their pace.

N ``ErrorRateTrigger``s, each watching a service of its own (its own API Gateway APIs
``svcNNN-green`` / ``-blue``; those get no traffic, so the error-rate read returns no datapoints),
with every other rule on (three alarms, a Route53 health check), run in one asyncio loop, as the
triggerer runs them, at the spec's default poll (30 s) and at 5 s. They run in a child process so that the figures are
the triggerer's alone: moto and the traffic simulator stay in the parent. Per N the child reports

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

    def periods(self, since: float, until: float, interval: float = float("inf")) -> list[float]:
        """Time between consecutive poll starts of the same trigger, within [since, until].

        A trigger whose next poll was overdue at ``until`` (more than ``interval`` since its last start)
        adds that open gap, a lower bound, so polls that fall behind are not left out of the figures.
        """
        out = []
        for starts in self.starts.values():
            inside = [t for t in starts if since <= t <= until]
            out += [b - a for a, b in itertools.pairwise(inside)]
            before = [t for t in starts if t <= until]
            if before and until - before[-1] > interval:
                out.append(until - before[-1])
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
    """Start N triggers, wait until each polled once, then measure a steady window of ``seconds``."""
    events: list[dict[str, Any]] = []
    lags: list[float] = []
    stop = asyncio.Event()
    lag_task = asyncio.create_task(_loop_lag(lags, stop))
    start = datetime.now(UTC)
    triggers = [
        soak_trigger(
            start,
            poll_interval=poll,
            soak_seconds=seconds + 600,
            health_check_id=health_check_id,
            service=f"svc{i:03d}",
        )
        for i in range(n)
    ]
    tasks = [asyncio.create_task(_consume(t, events)) for t in triggers]
    warm_started = time.perf_counter()
    await _all_polled(clock, n)
    # Every client is built once each soak polled; a few seconds more and no first poll's work is still
    # running when the window opens (a whole interval more at 30 s would only add idle time).
    await asyncio.sleep(min(poll, 5.0))
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
    periods = clock.periods(wall0, wall1, poll)
    return {
        "steady_seconds": window,
        "steady_polls": steady_polls,
        "cpu_s_per_poll": (cpu1 - cpu0) / steady_polls if steady_polls else None,
        "cpu_util_pct": 100 * (cpu1 - cpu0) / window,
        "poll_period_s": summarize(periods),
        "poll_lag_s": _percentiles([p - poll for p in periods]),
        "poll_latency_s": summarize(clock.durations[durations0:]),
        "loop_lag_s": summarize(lags[lags0:]),
        "warmup_s": warmup,
        "warmup_loop_lag_s": summarize(lags[:lags0]),
        "events": [e.get("status") for e in events],
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    """p50 / p99 / max (nearest rank) of how late polls started against their interval."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p99": None, "max": None}

    def rank(q: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))]

    return {"n": len(ordered), "p50": rank(0.5), "p99": rank(0.99), "max": ordered[-1]}


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
        soak_trigger(
            datetime.now(UTC), poll_interval=poll, soak_seconds=600, health_check_id=health_check_id, service=f"t{i}"
        )
        for i in range(n)
    ]
    tasks = [asyncio.create_task(_consume(t, [])) for t in triggers]
    await _all_polled(clock, n)
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"current": current, "peak": peak}


GOAL_N, GOAL_POLL = 200, 5.0


def _child_run(env: dict[str, str], n: int, seconds: float, poll: float, health_check_id: str) -> dict[str, Any]:
    args = json.dumps({"n": n, "seconds": seconds, "poll": poll, "health_check_id": health_check_id})
    parent_cpu = time.process_time()
    done = subprocess.run(
        [sys.executable, "-m", "bench.trigger_footprint", "--child", args],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 2 * WARMUP_TIMEOUT + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child for N={n} failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["parent_cpu_s"] = time.process_time() - parent_cpu
    return report


def run(
    reps: int = DEFAULT_REPS,
    *,
    counts: list[int] | None = None,
    polls: list[float] | None = None,
    periods: float = 2.0,
    rate: float = 20.0,
    quick: bool = False,
) -> BenchResult:
    """``periods``: the steady window in poll intervals (at least 2; 4 plus a second below a 10 s poll)."""
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.sandbox import Sandbox

    counts = counts or ([10, 50] if quick else [10, 50, 200, 500])
    polls = polls or ([5.0] if quick else [30.0, 5.0])
    result = BenchResult(
        NAME,
        {
            "reps": reps,
            "triggers": counts,
            "poll_intervals_s": polls,
            "steady_window_polls": periods,
            "traced_triggers_max": TRACED_MAX,
            "rules": "error rate (own service, no datapoints) + 3 alarms + Route53 health check",
        },
    )
    children: dict[str, list[dict[str, Any]]] = {}
    with Sandbox(rate_per_second=rate, flush_seconds=1) as sandbox, aws_connection(sandbox):
        set_weights(sandbox, 90, 10)
        health_check_id = Route53Hook(aws_conn_id="aws_default").ensure_health_check(
            caller_reference="bench-green", fqdn="production-green.execute-api.us-east-1.amazonaws.com"
        )
        env = {**os.environ, **sandbox.connection_env("aws_default")}
        for _ in range(reps):
            for poll in polls:
                for n in counts:
                    report = _child_run(
                        env, n, max(4 * poll + 1 if poll < 10 else 2 * poll + 1, periods * poll), poll, health_check_id
                    )
                    children.setdefault(f"{n}@{poll:g}", []).append(report)
                    lag = report["poll_lag_s"]
                    log(
                        f"{NAME}: N={n} poll {poll:g} s: RSS +{report['rss_peak_delta_mib']:.1f} MiB, "
                        f"{report['cpu_s_per_poll'] * 1000:.1f} ms CPU/poll, lag p50 {lag['p50']} p99 {lag['p99']}"
                    )
    rows = []
    for key, reports in children.items():
        n, poll = int(key.split("@")[0]), float(key.split("@")[1])
        r = reports[-1]
        lag = r["poll_lag_s"]
        per_soak = r["rss_peak_delta_mib"] / n if r["rss_peak_delta_mib"] is not None else None
        r["rss_per_soak_mib"] = per_soak
        rows.append(
            [
                n,
                f"{poll:g}",
                lag["n"],
                lag["p50"],
                lag["p99"],
                lag["max"],
                1000 * r["cpu_s_per_poll"] if r["cpu_s_per_poll"] else None,
                r["cpu_util_pct"],
                r["rss_peak_delta_mib"],
                per_soak,
                r["warmup_s"],
                r["loop_lag_s"]["max"],
            ]
        )
        prefix = f"N={n} poll {poll:g} s"
        result.add(f"{prefix}: poll lag p50", "s", [x["poll_lag_s"]["p50"] for x in reports])
        result.add(f"{prefix}: poll lag p99", "s", [x["poll_lag_s"]["p99"] for x in reports])
        result.add(f"{prefix}: CPU per poll", "ms", [1000 * x["cpu_s_per_poll"] for x in reports])
        result.add(f"{prefix}: RSS per soak", "MiB", [x["rss_peak_delta_mib"] / n for x in reports])
    result.table(
        "One triggerer process (child), steady window after every soak polled once; lag = poll start - "
        "(previous start + interval), over every poll of every soak",
        [
            "soaks",
            "poll (s)",
            "periods",
            "lag p50 (s)",
            "lag p99 (s)",
            "lag max (s)",
            "CPU/poll (ms)",
            "triggerer CPU %",
            "peak RSS over baseline (MiB)",
            "RSS per soak (MiB)",
            "warm-up (s)",
            "loop lag max (s)",
        ],
        rows,
    )
    goal_key = f"{GOAL_N}@{GOAL_POLL:g}"
    at_goal = children.get(goal_key, [None])[-1]
    if at_goal is None:  # --quick: the largest count measured at 5 s stands in
        measured = [k for k in children if k.endswith(f"@{GOAL_POLL:g}")]
        goal_key = max(measured, key=lambda k: int(k.split("@")[0])) if measured else None
        at_goal = children[goal_key][-1] if goal_key else None
    label = goal_key.replace("@", " soaks / ") + " s" if goal_key else "?"
    if at_goal is not None:
        why = (
            f"each poll blocks a thread of the loop's default executor ({at_goal['executor_threads']} threads) "
            "for its AWS round trips; moto runs on the same 2 CPUs"
        )
        result.goal(f"p99 poll lag ≤ 2 x interval at {label}", 2 * GOAL_POLL, at_goal["poll_lag_s"]["p99"], "s",
                    limit=why)  # fmt: skip
        result.goal(f"CPU per poll ≤ 5 ms at {label}", 5.0, 1000 * at_goal["cpu_s_per_poll"], "ms",
                    limit="botocore request building and response parsing (about 3 calls per poll)")  # fmt: skip
        per_soak = at_goal["rss_peak_delta_mib"] / int(label.split()[0])
        result.goal(f"RSS per soak ≤ 1 MiB at {label}", 1.0, per_soak, "MiB",
                    limit="per-trigger state, coroutine and executor thread stacks; hooks are shared")  # fmt: skip
    for what, unit, get in (
        ("poll lag p99", "s", lambda r: r["poll_lag_s"]["p99"] or 0.0),
        ("CPU per poll", "ms", lambda r: 1000 * r["cpu_s_per_poll"]),
        ("RSS per soak", "MiB", lambda r: r["rss_peak_delta_mib"] / r["n"]),
    ):
        series = {}
        for poll in polls:
            series[f"poll {poll:g} s"] = [
                (float(n), float(get(children[f"{n}@{poll:g}"][-1]))) for n in counts if f"{n}@{poll:g}" in children
            ]
        slug = what.replace(" ", "_")
        result.plots.append(
            {
                "file": f"trigger_{slug}.svg",
                "title": f"Triggerer: {what} by number of soaks",
                "x_label": "soaks in one triggerer (log scale)",
                "y_label": f"{what} ({unit})",
                "series": series,
                "log_x": True,
            }
        )
    result.details = {"children": children}
    result.notes.append(
        "Samples are the polls of the steady window (every soak's poll-to-poll gaps), one triggerer "
        "process per row; the soaks' services get no traffic, so GetMetricData returns empty series "
        "(a poll with data parses more). moto and the traffic run in the parent on the same 2 CPUs, so "
        "lag includes moto's queueing; CPU and memory are the triggerer's own."
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

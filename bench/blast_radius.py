"""How many user requests a faulty release fails: bluegreen against the story's own script, same world.

Both sides run on the ``aws`` sandbox profile with every AWS timing multiplied by ``scale``
(propagation, DNS TTL, the metrics period and its lag), and with the release ``bad`` (30 % of its
requests fail, a third of them as a 500 the handler returns itself) on green.

* **bluegreen**: the real stage transitions (``state.shift`` 10 %, then 50 % if the soak passes),
  the real ``ErrorRateTrigger`` soak with the rules the plan gives the example service
  (``metrics_source: apigateway``, its three alarms, period / lag / poll / window scaled), and at a
  breach the real failure callback ``rollback_on_failure`` (the state core's rollback).
* **story**: :mod:`bench.story_baseline` — shift, sleep, shift, no rollback logic in the script; a
  once-a-minute (scaled) monitor rolls back on alarms.

Failed requests are the sandbox's own count of failed answers from green, from the first shift until
green has taken no request for a while after the last change back to blue (DNS caches keep sending
traffic for up to a TTL). Every repetition is reported, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import (
    BenchResult,
    aws_connection,
    aws_scaled,
    green_tally,
    lego_plan,
    lego_spec,
    log,
    new_owner,
    point_slot,
    publish_release,
    slot_serving,
    spread,
    wait_until,
)

NAME = "blast_radius"
DEFAULT_REPS = 3
QUICK_REPS = 1
SCALE = 1 / 12  # period 5 s (CloudWatch accepts 1, 5, 10, 30 or n x 60), lag 10 s, TTL 5 s, soaks 25/50 s
QUICK_SCALE = 1 / 60
GOAL_RATIO = 20.0


def spec_for(sandbox: Any, scale: float) -> dict[str, Any]:
    """The example service's spec (API Gateway 5XX, three alarms) with its timings scaled."""
    period = max(1, round(60 * scale))
    return lego_spec(
        sandbox,
        metrics_source="apigateway",
        metrics_period_seconds=period,
        metrics_lag_seconds=2 * period,
        poll_interval_seconds=30 * scale,
    )


def wait_green_idle(sandbox: Any, quiet: float, timeout: float) -> float:
    """Block until green has served no request for ``quiet`` s (bounded); the epoch of its last one."""

    def idle() -> bool:
        last = sandbox.last_request_at("green")
        return last is None or time.time() - last >= quiet

    wait_until(idle, timeout=timeout, what="green to stop taking traffic", interval=0.2)
    return sandbox.last_request_at("green") or time.time()


def _series(sandbox: Any, since: float, until: float) -> list[tuple[float, float]]:
    """Cumulative failed green requests per second since ``since``."""
    total = 0
    points: list[tuple[float, float]] = [(0.0, 0.0)]
    for row in sandbox.served(since):
        if row["second"] > until:
            break
        total += row["green"]["failures"]
        points.append((row["second"] + 1 - since, float(total)))
    return points


def bluegreen_rep(sandbox: Any, plan: Any, spec: dict[str, Any], scale: float) -> dict[str, Any]:
    """One deployment of the bad release through bluegreen's soak and rollback."""
    from bench import failure_context, first_event
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.rollback import rollback_on_failure
    from bluegreen_provider.soak import Soak, SoakRules, slot_query
    from bluegreen_provider.state import Phase, ServiceState, acquire, record_release, shift
    from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

    owner = new_owner()
    svc = ServiceState(Route53Hook(aws_conn_id="aws_default"), plan.zone_id, plan.spec)
    acquire(svc, owner, live_versions=slot_serving(sandbox, "blue"), run_is_active=lambda _: False)
    serving = slot_serving(sandbox, "green")
    record_release(svc, owner, serving)
    rules = SoakRules.from_plan(plan)
    before = green_tally(sandbox)
    started_epoch, started = time.time(), time.monotonic()
    steps = [(10, 300 * scale), (50, 600 * scale)]
    previous, event, stage, detected = 0, None, None, None
    for pct, soak_seconds in steps:
        stage = pct
        outcome = shift(svc, owner, pct, previous_pct=previous, serving=serving)
        previous = pct
        submitted = datetime.now(UTC)
        insync = submitted + timedelta(seconds=sandbox.profile.propagation_seconds)
        soak = Soak(
            stage_pct=pct,
            candidate=slot_query(plan, "green"),
            baseline=slot_query(plan, "blue"),
            rules=rules,
            watch_from=submitted,
            soak_seconds=soak_seconds,
            clock_start=insync,
        )
        trigger = ErrorRateTrigger(soak=soak.to_dict(), mode="soak", aws_conn_id="aws_default")
        timeout = sandbox.profile.propagation_seconds + soak_seconds + rules.settle_seconds + 30
        event, seen = asyncio.run(first_event(trigger, timeout))
        if event.get("status") == "breach":
            detected = seen - started
            rollback_on_failure(failure_context(plan, owner, task_id=f"soak_{pct}"))
            break
        del outcome
    restored = time.monotonic() - started
    state = ServiceState(Route53Hook(aws_conn_id="aws_default"), plan.zone_id, plan.spec).state()
    rolled_back = state is not None and state.phase == Phase.ROLLED_BACK
    ttl = sandbox.profile.dns_ttl_seconds
    last = wait_green_idle(sandbox, quiet=ttl + 1, timeout=sandbox.profile.propagation_seconds + 3 * ttl + 30)
    after = green_tally(sandbox)
    return {
        "side": "bluegreen",
        "outcome": f"breach at {stage} % ({event.get('rule')})" if detected is not None else f"{event.get('status')}",
        "rolled_back": rolled_back,
        "stage_reached_pct": stage,
        "detect_s": detected,
        "rollback_sent_s": restored,
        "last_green_request_s": last - started_epoch,
        "green_requests": after[0] - before[0],
        "failed": after[1] - before[1],
        "series": _series(sandbox, started_epoch, last + 1),
    }


def story_rep(sandbox: Any, scale: float) -> dict[str, Any]:
    """One run of the story's script and monitor on the same release."""
    from bench.story_baseline import StoryDeployment

    before = green_tally(sandbox)
    started_epoch, started = time.time(), time.monotonic()
    story = StoryDeployment(sandbox, scale)
    period = sandbox.profile.metrics_period_seconds or 60 * scale
    settle = period + sandbox.profile.metrics_lag_seconds + 3 * 60 * scale + 5
    events = story.run(settle_seconds=settle)
    ttl = sandbox.profile.dns_ttl_seconds
    if sandbox.weights().get("green"):  # the monitor never rolled back: end the run, count until here
        from bench.story_baseline import _change

        _change(sandbox.clients()("route53"), sandbox.hosted_zone_id, 100, 0, "bench: end of the story run")
        events.append((time.monotonic(), "bench: back to blue (monitor did not)"))
    last = wait_green_idle(sandbox, quiet=ttl + 1, timeout=sandbox.profile.propagation_seconds + 3 * ttl + 30)
    after = green_tally(sandbox)
    rollbacks = [t - started for t, e in events if e.startswith("monitor:")]
    return {
        "side": "story",
        "outcome": f"{len(rollbacks)} monitor rollback(s)" if rollbacks else "never rolled back",
        "rolled_back": bool(rollbacks),
        "first_rollback_s": rollbacks[0] if rollbacks else None,
        "events": [(round(t - started, 2), e) for t, e in events],
        "last_green_request_s": last - started_epoch,
        "green_requests": after[0] - before[0],
        "failed": after[1] - before[1],
        "series": _series(sandbox, started_epoch, last + 1),
    }


def _quiet(sandbox: Any, timeout: float) -> None:
    """Wait until no alarm is in ALARM and the metrics window holds no error of the previous run."""
    wait_until(lambda: "ALARM" not in sandbox.alarm_states().values(), timeout=timeout, what="alarms to leave ALARM")


def run(
    reps: int = DEFAULT_REPS, *, scale: float | None = None, rate: float | None = None, quick: bool = False
) -> BenchResult:
    from bluegreen_provider.sandbox import Sandbox

    scale = scale or (QUICK_SCALE if quick else SCALE)
    # 80 req/s: at a 5 s period the alarms' threshold (5 % of all requests) sits 2 sd above the errors a
    # bad 10 % canary makes, as it does (further) on AWS's 60 s periods; at 40 req/s noise alone trips it.
    rate = rate or 80.0
    settings = aws_scaled(scale)
    result = BenchResult(
        NAME,
        {
            "reps": reps,
            "scale": scale,
            "rate_per_s": rate,
            "release": "bad (30 % of green's requests fail)",
            **{k: v for k, v in settings.items() if k != "profile"},
            "soaks_s": [300 * scale, 600 * scale],
            "poll_s": 30 * scale,
            "story_monitor_every_s": 60 * scale,
        },
    )
    runs: list[dict[str, Any]] = []
    with Sandbox(rate_per_second=rate, flush_seconds=1, **settings) as sandbox, aws_connection(sandbox):
        spec = spec_for(sandbox, scale)
        plan = lego_plan(sandbox, spec)
        point_slot(sandbox, "green", publish_release(sandbox, "bad"))
        drain = settings["metrics_period_seconds"] * 3 + settings["metrics_lag_seconds"] + 30
        for i in range(reps):
            for side in ("story", "bluegreen"):
                _quiet(sandbox, drain)
                # Let the sliding window forget the previous run's errors before the next one starts.
                time.sleep(settings["metrics_period_seconds"] + settings["metrics_lag_seconds"])
                item = story_rep(sandbox, scale) if side == "story" else bluegreen_rep(sandbox, plan, spec, scale)
                item["rep"] = i + 1
                runs.append(item)
                log(
                    f"{NAME}: rep {i + 1}/{reps} {side}: {item['outcome']}, "
                    f"{item['failed']} failed of {item['green_requests']}"
                )
    story = [r for r in runs if r["side"] == "story"]
    ours = [r for r in runs if r["side"] == "bluegreen"]
    ratios = [s["failed"] / max(1, b["failed"]) for s, b in zip(story, ours, strict=True)]
    result.add("story: failed requests", "req", [r["failed"] for r in story])
    result.add("bluegreen: failed requests", "req", [r["failed"] for r in ours])
    result.add("ratio story / bluegreen (per repetition)", "x", ratios)
    rows = []
    for s, b, ratio in zip(story, ours, ratios, strict=True):
        rows.append(
            [
                s["rep"],
                s["failed"],
                s["green_requests"],
                s["outcome"],
                b["failed"],
                b["green_requests"],
                b["outcome"],
                f"{ratio:.1f}x",
            ]
        )
    result.table(
        "Every repetition (failed = failed answers from green, first shift -> green's last request)",
        [
            "rep",
            "story failed",
            "story green req",
            "story outcome",
            "bluegreen failed",
            "bluegreen green req",
            "bluegreen outcome",
            "ratio",
        ],
        rows,
    )
    result.table(
        f"Summary, scale {scale:.4g} (AWS seconds = scaled / scale)",
        [
            "side",
            "failed requests",
            "green requests",
            "rollback sent after (scaled s)",
            "green's last request (scaled s)",
        ],
        [
            [
                "story script",
                spread([r["failed"] for r in story]),
                spread([r["green_requests"] for r in story]),
                spread([r["first_rollback_s"] for r in story if r["first_rollback_s"] is not None]),
                spread([r["last_green_request_s"] for r in story]),
            ],
            [
                "bluegreen",
                spread([r["failed"] for r in ours]),
                spread([r["green_requests"] for r in ours]),
                spread([r["rollback_sent_s"] for r in ours]),
                spread([r["last_green_request_s"] for r in ours]),
            ],
        ],
    )
    median_ratio = statistics.median(ratios) if ratios else None
    worst_ratio = min(ratios) if ratios else None
    limit = (
        "bluegreen's exposure is propagation + metrics period + lag + poll + TTL at 10 % "
        f"(≈ {ours[0]['last_green_request_s']:.0f} scaled s here); the lag of CloudWatch datapoints dominates"
        if ours
        else ""
    )
    goal = result.goal(
        f"failed requests story / bluegreen ≥ {GOAL_RATIO:g}x (median)",
        GOAL_RATIO,
        median_ratio,
        "x",
        at_most=False,
        limit=limit,
    )
    result.goal("… in the worst repetition", GOAL_RATIO, worst_ratio, "x", at_most=False, limit=goal.limit)
    series: dict[str, list[tuple[float, float]]] = {}
    styles: dict[str, str] = {}
    for r in runs:
        name = f"{'story script' if r['side'] == 'story' else 'bluegreen'} #{r['rep']}"
        series[name] = [(t, v) for t, v in r["series"]]
        styles[name] = "#d62728" if r["side"] == "story" else "#1f77b4"
    result.plots.append(
        {
            "file": "blast_radius.svg",
            "title": f"Failed user requests since the first shift (bad release, scale {scale:.3g})",
            "x_label": "seconds since the 10 % shift (scaled)",
            "y_label": "failed requests (cumulative)",
            "series": series,
            "styles": styles,
        }
    )
    for r in runs:
        r.pop("series", None)
    result.details = {"runs": runs}
    result.notes.append(
        "The approval is answered at once on the story's side; a person taking minutes adds 50 % of "
        "traffic on the bad release for that long. The story's script shifts on to 50 % and 100 % "
        "after the monitor rolled back (nothing in it checks), which the monitor then rolls back again."
    )
    result.notes.append(
        "Traffic is not scaled with time: at 80 req/s a scaled period holds fewer requests than an AWS "
        "minute would, so min_requests (20) takes longer to reach, in favour of the story's side."
    )
    return result

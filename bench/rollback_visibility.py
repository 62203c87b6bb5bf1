"""What users see after a rollback: breach visible -> rollback submitted -> INSYNC -> green's last request.

``aws`` profile, timings multiplied by ``scale``; the record's DNS TTL set to 0, 60 and 300 s (scaled).
Per repetition a new run takes lego-api to 10 % green (the real transitions), the real soak trigger
watches it with the example service's rules (its three alarms among them) and, at a random point
of its poll cycle after its first poll, one of those alarms is forced to ALARM: the breach is
visible from that moment. At the breach event the failure callback ``rollback_on_failure`` sends
the rollback. Route53's submission and INSYNC times are the sandbox's own record of the change;
green's last request is the traffic simulator's (clients keep their cached answer for the TTL).

In a DAG the callback runs on a worker after the triggerer's event resumes the task; here it runs
at once in-process, so the triggerer -> worker hop (about a second with a free slot) is not in the figures.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from typing import Any

from bench import (
    BenchResult,
    aws_connection,
    aws_scaled,
    deploy_to,
    failure_context,
    lego_plan,
    log,
    new_owner,
    spread,
    wait_until,
)
from bench.blast_radius import spec_for

NAME = "rollback_visibility"
DEFAULT_REPS = 3
QUICK_REPS = 1
SCALE = 1 / 12  # period 5 s, poll 2.5 s, propagation 2.5 s, TTL 0 / 5 / 25 s
QUICK_SCALE = 1 / 60
TTLS = (0.0, 60.0, 300.0)
ALARM = "lego-api-moc-errors"
SLACK_SUBMIT_S = 2.0
SLACK_INSYNC_S = 5.0


async def _watch(trigger: Any, poll: float, rng: random.Random, sandbox: Any) -> tuple[dict[str, Any], float, float]:
    """Start the soak, force the alarm at a random point of a later poll cycle; (event, forced, seen) epochs."""
    events = trigger.run()
    task = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(poll * (1 + rng.random()))
    if task.done():
        raise AssertionError(f"the soak ended before the alarm was forced: {task.result().payload}")
    forced = time.time()
    await asyncio.to_thread(sandbox.force_alarm, ALARM, "ALARM", "bench: forced")
    event = await asyncio.wait_for(task, timeout=poll * 4 + 30)
    seen = time.time()
    await events.aclose()
    return event.payload, forced, seen


def _rep(sandbox: Any, plan: Any, scale: float, rng: random.Random) -> dict[str, Any]:
    from bluegreen_provider.rollback import rollback_on_failure
    from bluegreen_provider.soak import Soak, SoakRules, slot_query
    from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

    owner = new_owner()
    deploy_to(sandbox, plan, owner, 10)
    submitted = datetime.now(UTC)
    rules = SoakRules.from_plan(plan)
    soak = Soak(
        stage_pct=10,
        candidate=slot_query(plan, "green"),
        baseline=slot_query(plan, "blue"),
        rules=rules,
        watch_from=submitted,
        soak_seconds=600,
        clock_start=submitted,
    )
    trigger = ErrorRateTrigger(soak=soak.to_dict(), mode="soak", aws_conn_id="aws_default")
    changes_before = len(sandbox.route53_changes())
    event, forced, seen = asyncio.run(_watch(trigger, rules.poll_interval, rng, sandbox))
    if event.get("status") != "breach":
        raise AssertionError(f"expected a breach event, got {event}")
    rollback_on_failure(failure_context(plan, owner))
    called_back = time.time()
    changes = sandbox.route53_changes()[changes_before:]
    back = next((c for c in reversed(changes) if c["weights"].get("green") == 0), None)
    if back is None:
        raise AssertionError(f"no change back to blue 100 after the breach: {changes}")
    ttl = sandbox.profile.dns_ttl_seconds
    # After INSYNC every resolver answers blue; a client that resolved just before keeps green for one TTL.
    wait_until(lambda: time.time() >= back["insync_at"] + ttl + 1, timeout=ttl + 60, what="INSYNC + TTL")
    last = sandbox.last_request_at("green") or back["insync_at"]
    sandbox.release_alarm(ALARM)
    wait_until(lambda: sandbox.alarm_states().get(ALARM) != "ALARM", timeout=60, what="the alarm to clear")
    return {
        "rule": event.get("rule"),
        "visible_to_event_s": seen - forced,
        "visible_to_submitted_s": back["submitted_at"] - forced,
        "event_to_callback_done_s": called_back - seen,
        "submitted_to_insync_s": back["insync_at"] - back["submitted_at"],
        "visible_to_insync_s": back["insync_at"] - forced,
        "visible_to_last_green_s": last - forced,
        "insync_to_last_green_s": last - back["insync_at"],
    }


def run(reps: int = DEFAULT_REPS, *, scale: float | None = None, quick: bool = False) -> BenchResult:
    from bluegreen_provider.sandbox import Sandbox

    scale = scale or (QUICK_SCALE if quick else SCALE)
    rng = random.Random(11)
    base = aws_scaled(scale)
    poll = 30 * scale
    result = BenchResult(
        NAME,
        {
            "reps": reps,
            "scale": scale,
            "ttls_aws_s": list(TTLS),
            "poll_s": poll,
            "propagation_s": base["propagation_seconds"],
            "alarm_forced": ALARM,
        },
    )
    by_ttl: dict[float, list[dict[str, Any]]] = {}
    for ttl in TTLS:
        settings = {**base, "dns_ttl_seconds": max(0.01, ttl * scale)}
        with Sandbox(rate_per_second=40, flush_seconds=1, **settings) as sandbox, aws_connection(sandbox):
            plan = lego_plan(sandbox, spec_for(sandbox, scale))
            for i in range(reps):
                item = _rep(sandbox, plan, scale, rng)
                by_ttl.setdefault(ttl, []).append(item)
                log(f"{NAME}: TTL {ttl:g} s (scaled {settings['dns_ttl_seconds']:g}) rep {i + 1}/{reps}: {item}")
    keys = [
        ("visible_to_submitted_s", "breach visible -> rollback submitted"),
        ("submitted_to_insync_s", "submitted -> INSYNC"),
        ("visible_to_insync_s", "breach visible -> INSYNC"),
        ("insync_to_last_green_s", "INSYNC -> green's last request"),
        ("visible_to_last_green_s", "breach visible -> green's last request"),
    ]
    rows = []
    for ttl, items in by_ttl.items():
        rows.append(
            [f"{ttl:g} s ({max(0.01, ttl * scale):g} s scaled)"] + [spread([r[k] for r in items]) for k, _ in keys]
        )
        for key, label in keys:
            result.add(f"TTL {ttl:g}: {label}", "s", [r[key] for r in items])
    result.table(
        f"Seconds (scaled, scale {scale:.3g}: poll {poll:g} s, propagation {base['propagation_seconds']:g} s), "
        "median [min-max]",
        ["DNS TTL (AWS)", *[label for _, label in keys]],
        rows,
    )
    every = [r for items in by_ttl.values() for r in items]
    worst_submit = max(r["visible_to_submitted_s"] for r in every)
    worst_insync = max(r["submitted_to_insync_s"] for r in every)
    result.goal(
        f"breach visible -> rollback submitted ≤ poll ({poll:g} s) + {SLACK_SUBMIT_S:g} s, worst repetition",
        poll + SLACK_SUBMIT_S,
        worst_submit,
        "s",
        limit="the poll interval (the alarm is seen at the next poll), then the callback's new hook and "
        "the state's compare-and-swap (ListResourceRecordSets + ChangeResourceRecordSets)",
    )
    result.goal(
        f"rollback submitted -> INSYNC ≤ propagation ({base['propagation_seconds']:g} s) + {SLACK_INSYNC_S:g} s, worst",
        base["propagation_seconds"] + SLACK_INSYNC_S,
        worst_insync,
        "s",
        limit="Route53 propagation as the profile models it; our code adds nothing after the submission",
    )
    result.plots.append(
        {
            "file": "rollback_visibility.svg",
            "kind": "bar",
            "title": f"After a breach, by DNS TTL (scaled x{scale:.3g}; medians)",
            "y_label": "seconds after the breach became visible (scaled)",
            "bars": {
                f"TTL {ttl:g}": {
                    label.removeprefix("breach visible -> "): float(sorted(r[key] for r in items)[len(items) // 2])
                    for key, label in keys
                    if key.startswith("visible_to")
                }
                for ttl, items in by_ttl.items()
            },
        }
    )
    result.details = {"runs": {f"{ttl:g}": items for ttl, items in by_ttl.items()}}
    result.notes.append(
        "Green keeps serving after INSYNC until every client's cached answer expires: up to one TTL. "
        "With a 300 s TTL that is 5 minutes of traffic on the release being rolled back, whatever the "
        "deployment tool does; the record's TTL is the lever (an alias record's TTL is the target's, 60 s)."
    )
    return result

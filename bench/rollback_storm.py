"""Rollback storm: N services breach at once and roll back together under Route53's API rate limit.

``aws`` profile, unscaled: Route53 allows a burst of 50 requests and then 10 per second per account
(throttled calls get ``Throttling``, a change to a zone right after another gets
``PriorRequestNotComplete``; botocore retries both), changes propagate for 30 s. N services are
seeded beside lego-api (own zone, record and functions), each taken by its own run and shifted to
10 % with the real transitions (throttling off for this untimed setup). Then, released together by
a barrier, N threads each run the failure callback ``rollback_on_failure`` for their service, as N
workers would. Per service the sandbox's own record of committed changes (no API call, so the
measurement spends none of the quota) gives when its change back to 100 % live was submitted and
when it was INSYNC; at the end every record is read back with ``ListResourceRecordSets``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench import BenchResult, aws_connection, log, spread, summarize, wait_until

NAME = "rollback_storm"
DEFAULT_REPS = 3
QUICK_REPS = 1
GOAL_SECONDS = 60.0


def _service_spec(sandbox: Any, service: Any, zip_file: str) -> dict[str, Any]:
    from bluegreen_provider.sandbox.world import alias_name

    return {
        "service": service.name,
        "hosted_zone": service.zone_name,
        "record_name": service.record_name,
        "functions": [{"name": f, "zip_file": zip_file} for f in service.functions],
        "slots": {
            slot: {
                "set_identifier": slot,
                "alias": alias_name(slot),
                "health_url": f"{sandbox.http_url}{service.health_path(slot)}",
                "health_check_fqdn": service.slot_dns_name(slot),
                "api_name": f"{service.name}-{slot}",
            }
            for slot in ("blue", "green")
        },
        "alarms": [],
    }


def _setup(sandbox: Any, count: int, rep: int) -> list[tuple[Any, str, str]]:
    """Seed ``count`` services and take each to 10 % green under its own run; (plan, owner, zone) each."""
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.plan import Plan
    from bluegreen_provider.sandbox import throttling
    from bluegreen_provider.sandbox.world import ServiceWorld
    from bluegreen_provider.spec import DeploymentSpec
    from bluegreen_provider.state import ServiceState, acquire, record_release, shift

    zip_file = str(sandbox.release_zip("v2"))
    hook = Route53Hook(aws_conn_id="aws_default")
    out = []
    throttling.LIMITS.configure(enabled=False)
    try:
        for i in range(count):
            name = f"storm{i:03d}"
            service = ServiceWorld(name, f"{name}.example", f"api.{name}.example", (f"{name}-api",))
            zone_id = sandbox.add_service(service)
            spec = DeploymentSpec.from_dict(_service_spec(sandbox, service, zip_file))
            owner = f"storm_deploy/rep{rep}_{name}"
            versions = {f: "1" for f in service.functions}
            plan = Plan(
                spec=spec,
                zone_id=zone_id,
                live="blue",
                candidate="green",
                owner=owner,
                split_before={"blue": 100, "green": 0},
                live_versions=versions,
                candidate_versions_before=versions,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            svc = ServiceState(hook, zone_id, spec)
            acquire(svc, owner, live_versions=versions, run_is_active=lambda _: False)
            record_release(svc, owner, versions)
            shift(svc, owner, 10, previous_pct=0, serving=versions)
            out.append((plan, owner, zone_id))
    finally:
        profile = sandbox.profile
        throttling.LIMITS.configure(
            enabled=True,
            burst=profile.throttle_burst,
            rate_per_second=profile.throttle_rate_per_second,
            prior_request_seconds=profile.prior_request_seconds,
        )
    return out


def _back(zone_id: str, after: float) -> dict[str, Any] | None:
    """The zone's first committed change after ``after`` that leaves green at 0 (None: none yet)."""
    from bluegreen_provider.sandbox.route53_rules import CHANGES

    for change in CHANGES.zone(zone_id):
        weights = {r.get("SetIdentifier"): r.get("Weight") for r in change.record_sets if r.get("Type") == "A"}
        if change.submitted_at >= after and weights.get("green") == 0 and weights.get("blue") == 100:
            return {"submitted_at": change.submitted_at, "insync_at": change.insync_at}
    return None


def _storm(sandbox: Any, services: list[tuple[Any, str, str]]) -> dict[str, Any]:
    from bench import failure_context
    from bluegreen_provider.rollback import rollback_on_failure
    from bluegreen_provider.sandbox import throttling

    throttled0, prior0 = throttling.LIMITS.throttled, throttling.LIMITS.refused_prior
    barrier = threading.Barrier(len(services) + 1)
    done: dict[str, float] = {}

    def worker(plan: Any, owner: str) -> None:
        barrier.wait()
        rollback_on_failure(failure_context(plan, owner))
        done[owner] = time.time()

    threads = [threading.Thread(target=worker, args=(p, o), name=f"storm-{o}") for p, o, _ in services]
    for thread in threads:
        thread.start()
    start = time.time()
    barrier.wait()
    for thread in threads:
        thread.join(timeout=600)
    callbacks_done = time.time()
    backs = {zone: _back(zone, start) for _, _, zone in services}
    if all(backs.values()):
        last_insync = max(b["insync_at"] for b in backs.values() if b)
        wait_until(lambda: time.time() >= last_insync, timeout=120, what="the last change INSYNC")
    throttling.LIMITS.configure(enabled=False)  # the read-back below is the bench's, not the storm's
    split = []
    for plan, _, _ in services:
        weights = sandbox.service_weights(plan.spec.service)
        if weights != {"blue": 100, "green": 0}:
            split.append({plan.spec.service: weights})
    submitted = [b["submitted_at"] - start for b in backs.values() if b]
    insync = [b["insync_at"] - start for b in backs.values() if b]
    return {
        "services": len(services),
        "not_rolled_back": sum(1 for b in backs.values() if b is None),
        "left_split": split,
        "all_callbacks_done_s": callbacks_done - start,
        "last_submitted_s": max(submitted) if submitted else None,
        "last_insync_s": max(insync) if len(insync) == len(services) else None,
        "submitted_s": summarize(submitted),
        "callback_s": summarize([t - start for t in done.values()]),
        "throttled": throttling.LIMITS.throttled - throttled0,
        "prior_request_not_complete": throttling.LIMITS.refused_prior - prior0,
        "submitted_series": sorted(submitted),
        "insync_series": sorted(insync),
    }


def _limit(runs: list[dict[str, Any]], prop: float) -> str:
    """What the storm's time is made of, from what was measured."""
    throttled = max(r["throttled"] for r in runs)
    prior = max(r["prior_request_not_complete"] for r in runs)
    submitted = max(r["last_submitted_s"] or 0 for r in runs)
    text = f"Route53 propagation ({prop:g} s) after the last submission (at {submitted:.1f} s); "
    if throttled:
        return text + f"{throttled} Throttling and {prior} PriorRequestNotComplete answers retried by botocore"
    return text + (
        "no request was throttled (each rollback makes 2 Route53 calls, within the burst of 50 plus 10/s): "
        "the submissions are spread by each callback building its own hook and boto3 client at once"
    )


def run(reps: int = DEFAULT_REPS, *, services: int | None = None, quick: bool = False) -> BenchResult:
    from bluegreen_provider.sandbox import Sandbox

    count = services or (10 if quick else 50)
    settings: dict[str, Any] = {"profile": "aws", "health_checkers": 0}
    if quick:
        settings["propagation_seconds"] = 3.0
    result = BenchResult(NAME, {"reps": reps, "services": count, **settings, "throttle": "burst 50, 10 req/s"})
    runs = []
    with Sandbox(rate_per_second=5, flush_seconds=5, **settings) as sandbox, aws_connection(sandbox):
        for rep in range(reps):
            services_ = _setup(sandbox, count, rep)
            time.sleep(sandbox.profile.throttle_burst / sandbox.profile.throttle_rate_per_second)  # refill
            item = _storm(sandbox, services_)
            runs.append(item)
            log(
                f"{NAME}: rep {rep + 1}/{reps}: last submitted {item['last_submitted_s']}, last INSYNC "
                f"{item['last_insync_s']}, split {len(item['left_split'])}, throttled {item['throttled']}"
            )
    prop = settings.get("propagation_seconds", 30.0)
    result.add("all back on live, INSYNC (last service)", "s", [r["last_insync_s"] or float("nan") for r in runs])
    result.add("last rollback submitted", "s", [r["last_submitted_s"] or float("nan") for r in runs])
    result.add("services left split", "", [len(r["left_split"]) + r["not_rolled_back"] for r in runs])
    result.table(
        f"{count} services rolled back at once (Route53 burst 50, 10 req/s, propagation {prop:g} s)",
        ["", "median [min-max] over repetitions"],
        [
            ["first service's rollback submitted (s)", spread([r["submitted_s"]["min"] for r in runs])],
            ["median service's rollback submitted (s)", spread([r["submitted_s"]["median"] for r in runs])],
            [
                "last service's rollback submitted (s)",
                spread([r["last_submitted_s"] for r in runs if r["last_submitted_s"]]),
            ],
            [
                "last service INSYNC = all back on live (s)",
                spread([r["last_insync_s"] for r in runs if r["last_insync_s"]]),
            ],
            ["every callback returned (s)", spread([r["all_callbacks_done_s"] for r in runs])],
            ["Throttling answers", spread([r["throttled"] for r in runs])],
            ["PriorRequestNotComplete answers", spread([r["prior_request_not_complete"] for r in runs])],
            [
                "services left split or not rolled back",
                spread([len(r["left_split"]) + r["not_rolled_back"] for r in runs]),
            ],
        ],
    )
    worst = [r["last_insync_s"] for r in runs]
    result.goal(
        f"all {count} back on their live slot within {GOAL_SECONDS:g} s (worst repetition, INSYNC)",
        GOAL_SECONDS,
        None if None in worst else max(worst),
        "s",
        limit=_limit(runs, prop),
    )
    result.goal(
        "services left split",
        0,
        float(max(len(r["left_split"]) + r["not_rolled_back"] for r in runs)),
        "",
        limit="a callback whose retries run out leaves its service split until the rollback task retries",
    )
    result.plots.append(
        {
            "file": "rollback_storm.svg",
            "title": f"{count} simultaneous rollbacks: services done over time (first repetition)",
            "x_label": "seconds since the breaches",
            "y_label": "services",
            "series": {
                "rollback submitted": [(t, i + 1.0) for i, t in enumerate(runs[0]["submitted_series"])],
                "INSYNC (back on live)": [(t, i + 1.0) for i, t in enumerate(runs[0]["insync_series"])],
            },
        }
    )
    for r in runs:
        r.pop("submitted_series")
        r.pop("insync_series")
    result.details = {"runs": runs}
    return result

"""Users still on the candidate after a rollback, with each traffic router.

``aws`` profile, timings multiplied by ``scale`` (propagation 2.5 s, DNS TTL 5 s at 1/12). Per
repetition a new run takes lego-api to 10 % green through the real transitions, then the rollback
transition is sent (what the failure callback sends) and the traffic simulator's record says when
the last request reached green and how many did after the rollback.

* ``route53``: the record's weighted sets; resolvers see the change over the propagation, then each
  client keeps its cached answer for the TTL.
* ``lambda_alias``: the live alias's weighted routing; Lambda picks the version per invocation, so the
  candidate stops once the alias changed (the sandbox re-reads the alias every second).
"""

from __future__ import annotations

import time
from typing import Any

from bench import (
    BenchResult,
    aws_connection,
    aws_scaled,
    deploy_to,
    lego_plan,
    lego_spec,
    log,
    new_owner,
    point_slot,
    publish_release,
    spread,
    wait_until,
)

NAME = "router_rollback"
DEFAULT_REPS = 3
QUICK_REPS = 1
SCALE = 1 / 12
QUICK_SCALE = 1 / 60  # 1 s metrics periods, propagation 0.5 s, TTL 1 s
ROUTERS = ("route53", "lambda_alias")
ALIAS_GOAL_S = 3.0  # "within seconds": the sandbox re-reads the alias each second, plus a request's own time


def _rep(sandbox: Any, plan: Any, router: str) -> dict[str, Any]:
    from bluegreen_provider.state import rollback

    owner = new_owner()
    svc = deploy_to(sandbox, plan, owner, 10)
    shifted = time.time()
    wait_until(lambda: (sandbox.last_request_at("green") or 0) > shifted + 1, timeout=60, what="green's traffic")
    sent = time.time()
    rollback(svc, owner, "bench: rollback latency")
    # Route53: resolvers move over the propagation, clients keep an answer one TTL; an alias has no cache.
    cached = sandbox.profile.dns_ttl_seconds + sandbox.profile.propagation_seconds if router == "route53" else 0.0
    wait_until(lambda: time.time() > sent + cached + 3, timeout=cached + 60, what="settling")
    last = sandbox.last_request_at("green") or sent
    after = sum(row["green"]["requests"] for row in sandbox.served(sent) if row["second"] > int(sent))
    return {"rollback_to_last_green_s": max(0.0, last - sent), "green_requests_after": after}


def run(reps: int = DEFAULT_REPS, *, scale: float | None = None, quick: bool = False) -> BenchResult:
    from bluegreen_provider.sandbox import Sandbox

    scale = scale or (QUICK_SCALE if quick else SCALE)
    reps = QUICK_REPS if quick else reps
    settings = aws_scaled(scale)
    rate = 80.0
    result = BenchResult(
        NAME,
        {
            "reps": reps,
            "scale": scale,
            "rate_per_s": rate,
            "routers": list(ROUTERS),
            "propagation_s": settings["propagation_seconds"],
            "dns_ttl_s": settings["dns_ttl_seconds"],
        },
    )
    by_router: dict[str, list[dict[str, Any]]] = {}
    for router in ROUTERS:
        box = Sandbox(rate_per_second=rate, flush_seconds=1, router=router, **settings)
        with box as sandbox, aws_connection(sandbox):
            point_slot(sandbox, "green", publish_release(sandbox, "v2"))  # the candidate's own version
            plan = lego_plan(sandbox, lego_spec(sandbox, router=router))
            for i in range(reps):
                item = _rep(sandbox, plan, router)
                by_router.setdefault(router, []).append(item)
                log(f"{NAME}: {router} rep {i + 1}/{reps}: {item}")
    ttl, propagation = settings["dns_ttl_seconds"], settings["propagation_seconds"]
    rows = []
    for router, items in by_router.items():
        rows.append(
            [
                router,
                spread([r["rollback_to_last_green_s"] for r in items]),
                spread([r["green_requests_after"] for r in items]),
            ]
        )
        result.add(f"{router}: rollback -> green's last request", "s", [r["rollback_to_last_green_s"] for r in items])
        result.add(
            f"{router}: requests on green after the rollback", "requests", [r["green_requests_after"] for r in items]
        )
    result.table(
        f"After the rollback (scaled x{scale:.3g}: propagation {propagation:g} s, TTL {ttl:g} s, {rate:g} req/s, "
        "10 % on green), median [min-max]",
        ["router", "rollback -> green's last request (s)", "requests green served after it"],
        rows,
    )
    alias = by_router.get("lambda_alias", [])
    route53 = by_router.get("route53", [])
    if alias:
        result.goal(
            f"lambda_alias: green's last request ≤ {ALIAS_GOAL_S:g} s after the rollback, worst",
            ALIAS_GOAL_S,
            max(r["rollback_to_last_green_s"] for r in alias),
            "s",
            limit="per-invocation routing: the next invocation after UpdateAlias takes the live version; the "
            "sandbox re-reads the alias once a second",
        )
    if route53:
        result.goal(
            f"route53: green's last request ≤ propagation + TTL ({propagation + ttl:g} s) + 1 s, worst",
            propagation + ttl + 1,
            max(r["rollback_to_last_green_s"] for r in route53),
            "s",
            limit="resolvers take the change over the propagation, then clients keep their cached answer one TTL",
        )
    result.plots.append(
        {
            "file": "router_rollback.svg",
            "kind": "bar",
            "title": f"Rollback to green's last request, by router (scaled x{scale:.3g}; medians)",
            "y_label": "seconds after the rollback (scaled)",
            "bars": {
                router: {
                    "green's last request": float(sorted(r["rollback_to_last_green_s"] for r in items)[len(items) // 2])
                }
                for router, items in by_router.items()
            },
        }
    )
    result.details = {"runs": by_router}
    result.notes.append(
        "With Route53 the users still on the candidate after a rollback are the ones whose resolver or "
        "client cache holds the old answer: up to propagation plus one TTL (60 s for an alias record on "
        "AWS). With alias routing no cache is involved; the candidate serves nothing once the alias changed."
    )
    return result

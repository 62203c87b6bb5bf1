"""The e2e scenarios under either traffic router: which DAG runs, and where the split is read back.

``ROUTERS`` parametrises a scenario; its ``lambda_alias`` case starts the sandbox with alias routing
(every request invokes ``fn:production``) and runs the same lego-api config with ``router:
"lambda_alias"`` (``tests/e2e/dags/variants.py``). Only the scenarios the story names run twice, to
keep the added time small.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from bluegreen_provider.sandbox.world import FUNCTIONS, LIVE_ALIAS, SLOTS, alias_name

from .aws_state import aws_state_tree, weighted_set, weighted_sets
from .conftest import E2E_DAGS, REPO

# Lambda picks each invocation's version at random, so at 40 req/s over four functions a 4 s soak of
# the 10 % step sees ~12 candidate requests give or take a handful: twice the sandbox's traffic keeps
# it clear of the run's min_requests (8), as a real service's volume would.
ROUTERS = [
    pytest.param("route53", id="route53"),
    pytest.param(
        "lambda_alias", id="lambda_alias", marks=pytest.mark.sandbox(router="lambda_alias", rate_per_second=80)
    ),
]


def dag_of(router: str) -> dict[str, Any]:
    """``deploy()``'s DAG for the router: the repo's DAG, or the alias-routed variant of the same config."""
    if router == "route53":
        return {}
    return {"dag_file": E2E_DAGS / "variants.py", "dag_name": "alias_routed"}


def rollback_dag_of(router: str) -> tuple[Any, str]:
    """(file, name) of the emergency-rollback DAG of the router's config."""
    if router == "route53":
        return REPO / "dags" / "blue_green_deploy.py", "rollback"
    return E2E_DAGS / "variants.py", "alias_rollback"


def traffic(router: str, state: bytes | Mapping[str, Any]) -> dict[str, int]:
    """The split as the router carries it, read from a moto state: weighted sets, or the live aliases."""
    if router == "route53":
        return {s: int(r["Weight"]) for s, r in weighted_sets(state).items()}
    lambdas = aws_state_tree(state)["lambda"]
    splits = []
    for fn in FUNCTIONS:
        aliases = lambdas[fn]["aliases"]
        slot_of = {aliases[alias_name(s)]["FunctionVersion"]: s for s in reversed(SLOTS)}  # blue on a tie
        live = aliases[LIVE_ALIAS]
        split = dict.fromkeys(SLOTS, 0)
        rest = 100
        for version, weight in ((live.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}).items():
            split[slot_of[version]] += round(weight * 100)
            rest -= round(weight * 100)
        split[slot_of[live["FunctionVersion"]]] += rest
        splits.append(split)
    assert all(s == splits[0] for s in splits), f"the functions' live aliases disagree: {splits}"
    return splits[0]


def traffic_paths(router: str, *, health_check: bool = False) -> list[str]:
    """What moving traffic may change: both weights (and green's health check), or the live aliases."""
    if router == "route53":
        paths = [weighted_set("blue", "Weight"), weighted_set("green", "Weight")]
        return [*paths, weighted_set("green", "HealthCheckId")] if health_check else paths
    return [f"lambda/{fn}/aliases/{LIVE_ALIAS}/*" for fn in FUNCTIONS]


def green_share(sandbox: Any, router: str) -> int | None:
    """The candidate's share now, read cheaply (a watcher polls it)."""
    if router == "route53":
        return sandbox.weights().get("green")
    lam = sandbox.clients()("lambda")
    live = lam.get_alias(FunctionName=FUNCTIONS[0], Name=LIVE_ALIAS)
    weights = (live.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return round(100 * sum(weights.values()))

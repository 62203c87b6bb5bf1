"""The story's deployment, end to end: the real DAG, live sandbox traffic, state read back from AWS."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

FUNCTIONS = ("lego-api-moc", "lego-api-gallery", "lego-api-wishlist", "lego-api-profile")


def alias_versions(sandbox, alias: str) -> dict[str, str]:
    lam = sandbox.clients()("lambda")
    return {fn: lam.get_alias(FunctionName=fn, Name=alias)["FunctionVersion"] for fn in FUNCTIONS}


def code_sha(sandbox, fn: str, version: str) -> str:
    return sandbox.clients()("lambda").get_function(FunctionName=fn, Qualifier=version)["Configuration"]["CodeSha256"]


def test_happy_path_promotes_green_retains_blue_then_tears_it_down(deploy, sandbox):
    result = deploy("v2")

    assert result.state == "success", result.states
    for task in ("plan", "deploy_green", "run_migrations", "health_check", "shift_10", "soak_10",
                 "shift_50", "soak_50", "approval", "shift_100", "teardown_blue"):
        assert result.states[task] == "success", (task, result.states)
    assert result.states["rollback"] == "skipped"
    assert result.states["hold"] == "skipped"
    assert sandbox.weights() == {"blue": 0, "green": 100}
    green = alias_versions(sandbox, "production-green")
    blue = alias_versions(sandbox, "production-blue")
    for fn in FUNCTIONS:
        assert code_sha(sandbox, fn, green[fn]) == sandbox.release_sha256("v2")
        assert code_sha(sandbox, fn, blue[fn]) == sandbox.release_sha256("v1")
    soak = result.xcom("soak_10")
    assert soak["requests"] > 0 and soak["rate_pct"] == 0
    assert result.xcom("approval")["decision"] == "approve"
    teardown = result.xcom("teardown_blue")
    assert teardown["action"] == "retired", teardown
    assert sandbox.stats()["green"]["errors"] == 0

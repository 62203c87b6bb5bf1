"""The story's deployment, end to end: the real DAG, live sandbox traffic, state read back from AWS."""

from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from .conftest import E2E_DAGS, REPO, load_dag

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


def test_bad_release_rolls_back_at_10_percent_and_fails_the_run(deploy, sandbox):
    result = deploy("bad")

    assert result.state == "failed"
    assert result.states["soak_10"] == "failed"
    assert result.states["shift_50"] == "upstream_failed"
    assert result.states["approval"] == "upstream_failed"
    assert result.states["rollback"] == "failed"  # traffic restored, then the run is failed on purpose
    assert sandbox.weights() == {"blue": 100, "green": 0}
    for fn, version in alias_versions(sandbox, "production-blue").items():
        assert code_sha(sandbox, fn, version) == sandbox.release_sha256("v1")
    stats = sandbox.stats()
    assert stats["blue"]["errors"] == 0
    assert stats["green"]["errors"] > 0
    print(f"blast radius of the bad release: {stats['green']['errors']} failed of {stats['green']['requests']}")
    tags = sandbox.clients()("route53").list_tags_for_resource(
        ResourceType="hostedzone", ResourceId=sandbox.hosted_zone_id
    )["ResourceTagSet"]["Tags"]
    assert not [t for t in tags if t["Key"].startswith("bluegreen:lock:")], "the lock must be released"


def test_alarm_at_50_percent_rolls_back(deploy, sandbox):
    fired = threading.Event()

    def fire_when_half() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not fired.is_set():
            if sandbox.weights().get("green") == 50:
                sandbox.force_alarm("lego-api-gateway-5xx-errors", reason="5xx spike after the 50 % shift")
                fired.set()
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=fire_when_half, daemon=True)
    watcher.start()
    result = deploy("v2")
    watcher.join(timeout=1)

    assert fired.is_set()
    assert result.state == "failed"
    assert result.states["soak_10"] == "success"
    assert result.states["soak_50"] == "failed"
    assert result.states["approval"] == "upstream_failed"
    assert result.states["rollback"] == "failed"
    assert sandbox.weights() == {"blue": 100, "green": 0}


def test_rejected_approval_holds_at_50_50_and_blocks_the_next_run_until_rolled_back(deploy, sandbox):
    held = deploy("v2", approval="Reject")

    assert held.state == "failed"
    assert held.states["approval"] == "success"
    assert held.states["shift_100"] == "skipped"
    assert held.states["hold"] == "failed"
    assert held.states["rollback"] == "skipped"
    assert sandbox.weights() == {"blue": 50, "green": 50}
    assert held.xcom("approval")["decision"] == "reject"

    refused = deploy("v2")
    assert refused.states["plan"] == "failed"
    assert refused.states["deploy_green"] == "upstream_failed"
    assert sandbox.weights() == {"blue": 50, "green": 50}, "a refused run must not touch the held split"

    rollback_dag = load_dag(REPO / "dags" / "blue_green_deploy.py", "rollback")
    rolled = rollback_dag.test()
    assert rolled.state == "success"
    assert sandbox.weights() == {"blue": 100, "green": 0}
    again = rollback_dag.test()
    assert again.state == "failed", "nothing left to roll back: the manual rollback says so and changes nothing"
    assert sandbox.weights() == {"blue": 100, "green": 0}


def test_failed_migration_aborts_before_any_traffic(deploy, sandbox, service_db):
    result = deploy("v2", dag_file=E2E_DAGS / "variants.py", dag_name="broken_migrations")

    assert result.state == "failed"
    assert result.states["deploy_green"] == "success"
    assert result.states["run_migrations"] == "failed"
    assert result.states["health_check"] == "upstream_failed"
    assert result.states["shift_10"] == "upstream_failed"
    assert sandbox.weights() == {"blue": 100, "green": 0}
    assert sandbox.stats()["green"]["requests"] == 0
    with psycopg2.connect(service_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM bluegreen_schema_migrations ORDER BY version")
        assert [r[0] for r in cur.fetchall()] == [1]
        cur.execute("SELECT to_regclass('half_done')")
        assert cur.fetchone()[0] is None, "the failed migration left no partial schema"


def test_unhealthy_release_aborts_before_any_traffic(deploy, sandbox):
    result = deploy("unhealthy", dag_file=E2E_DAGS / "variants.py", dag_name="quick_health")

    assert result.state == "failed"
    assert result.states["health_check"] == "failed"
    assert result.states["shift_10"] == "upstream_failed"
    assert sandbox.weights() == {"blue": 100, "green": 0}
    assert sandbox.stats()["green"]["requests"] == 0


def test_dry_run_changes_nothing(deploy, sandbox):
    before = alias_versions(sandbox, "production-green")
    result = deploy("v2", dry_run=True)

    assert result.states["plan"] == "success"
    assert all(state == "skipped" for task, state in result.states.items() if task != "plan"), result.states
    assert alias_versions(sandbox, "production-green") == before
    assert sandbox.weights() == {"blue": 100, "green": 0}
    changes = result.xcom("plan")["changes"]
    assert any("shift" in c["stage"] for c in changes), changes


def test_any_step_list_shapes_the_stages(deploy, sandbox):
    result = deploy(
        "v2",
        dag_file=E2E_DAGS / "variants.py",
        dag_name="five_25_100",
        steps=[{"weight": 5, "soak_seconds": 3}, {"weight": 25, "soak_seconds": 3}, {"weight": 100}],
        min_requests=2,
    )

    assert result.state == "success", result.states
    assert {"shift_5", "soak_5", "shift_25", "soak_25", "shift_100"} <= set(result.states)
    assert sandbox.weights() == {"blue": 0, "green": 100}

"""The story's deployment, end to end: the real DAG, live sandbox traffic, state read back from AWS."""

from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from bluegreen_provider.state import owner_of

from .conftest import E2E_DAGS, REPO, deployment_state, load_dag, record_sets

pytestmark = pytest.mark.e2e

FUNCTIONS = ("lego-api-moc", "lego-api-gallery", "lego-api-wishlist", "lego-api-profile")


def alias_versions(sandbox, alias: str) -> dict[str, str]:
    lam = sandbox.clients()("lambda")
    return {fn: lam.get_alias(FunctionName=fn, Name=alias)["FunctionVersion"] for fn in FUNCTIONS}


def code_sha(sandbox, fn: str, version: str) -> str:
    return sandbox.clients()("lambda").get_function(FunctionName=fn, Qualifier=version)["Configuration"]["CodeSha256"]


def test_happy_path_promotes_green_retains_blue_then_tears_it_down(deploy, sandbox):
    assert deployment_state(sandbox) is None
    result = deploy("v2")

    assert result.state == "success", result.states
    for task in (
        "plan",
        "deploy_green",
        "run_migrations",
        "health_check",
        "shift_10",
        "soak_10",
        "shift_50",
        "soak_50",
        "approval",
        "shift_100",
        "teardown_blue",
    ):
        assert result.states[task] == "success", (task, result.states)
    # The rollback is the run's teardown: it runs after a promotion too, and finds nothing to undo.
    assert result.states["rollback"] == "success"
    rollback = result.xcom("rollback")
    assert rollback["action"] == "nothing" and "promoted" in rollback["reason"], rollback
    assert rollback["split_now"] == {"blue": 0, "green": 100}
    assert result.states["hold"] == "skipped"
    assert sandbox.weights() == {"blue": 0, "green": 100}
    green = alias_versions(sandbox, "production-green")
    blue = alias_versions(sandbox, "production-blue")
    for fn in FUNCTIONS:
        assert code_sha(sandbox, fn, green[fn]) == sandbox.release_sha256("v2")
        assert code_sha(sandbox, fn, blue[fn]) == sandbox.release_sha256("v1")
    state = deployment_state(sandbox)
    assert state.owner == owner_of(result.dag_id, result.run_id)
    # plan, deploy_green, health_check, shift_10, shift_50, shift_100 (retained), teardown_blue (retired)
    assert (state.phase, state.generation) == ("retired", 7), state
    # green's check is kept for its next canary; at 0/100 no weighted set carries a check
    route53 = sandbox.clients()("route53")
    assert list(state.health_checks) == ["green"]
    assert state.health_checks["green"] in {c["Id"] for c in route53.list_health_checks()["HealthChecks"]}
    listed = route53.list_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id)["ResourceRecordSets"]
    assert not [r for r in listed if "SetIdentifier" in r and "HealthCheckId" in r]
    assert (state.live, state.candidate, state.retained) == ("green", "blue", None)
    assert state.split == {"blue": 0, "green": 100}
    assert state.versions == {"blue": blue, "green": green}
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
    # The failing soak's callback restored traffic; the rollback teardown confirms it and succeeds.
    assert result.states["rollback"] == "success"
    rollback = result.xcom("rollback")
    assert rollback["action"] == "nothing" and "already" in rollback["reason"], rollback
    assert rollback["split_now"] == {"blue": 100, "green": 0}
    assert sandbox.weights() == {"blue": 100, "green": 0}
    for fn, version in alias_versions(sandbox, "production-blue").items():
        assert code_sha(sandbox, fn, version) == sandbox.release_sha256("v1")
    stats = sandbox.stats()
    assert stats["blue"]["errors"] == 0
    assert stats["green"]["errors"] > 0
    print(f"blast radius of the bad release: {stats['green']['errors']} failed of {stats['green']['requests']}")
    state = deployment_state(sandbox)
    assert state.owner == owner_of(result.dag_id, result.run_id)
    assert (state.phase, state.live, state.split) == ("rolled_back", "blue", {"blue": 100, "green": 0}), state
    assert state.reason.startswith("soak_10 failed"), state.reason
    assert not state.active, "a rolled-back run must not keep the service"


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
    assert result.states["rollback"] == "success"
    assert sandbox.weights() == {"blue": 100, "green": 0}
    state = deployment_state(sandbox)
    assert (state.phase, state.live, state.split) == ("rolled_back", "blue", {"blue": 100, "green": 0}), state
    assert state.reason.startswith("soak_50 failed"), state.reason


def test_rejected_approval_holds_at_50_50_and_blocks_the_next_run_until_rolled_back(deploy, sandbox, capfd):
    held = deploy("v2", approval="Reject")

    assert held.state == "failed"
    assert held.states["approval"] == "success"
    assert held.states["shift_100"] == "skipped"
    assert held.states["hold"] == "failed"
    # The rollback teardown runs, and a hold keeps its split.
    assert held.states["rollback"] == "success"
    rollback = held.xcom("rollback")
    assert rollback["action"] == "nothing" and "a hold keeps its split" in rollback["reason"], rollback
    assert sandbox.weights() == {"blue": 50, "green": 50}
    assert held.xcom("approval")["decision"] == "reject"
    state = deployment_state(sandbox)
    assert state.owner == owner_of(held.dag_id, held.run_id)
    assert (state.phase, state.split) == ("held", {"blue": 50, "green": 50}), state
    assert state.reason.startswith("held: rejected by"), state.reason

    refused = deploy("v2")
    assert refused.states["plan"] == "failed"
    assert refused.states["deploy_green"] == "upstream_failed"
    assert sandbox.weights() == {"blue": 50, "green": 50}, "a refused run must not touch the held split"
    assert deployment_state(sandbox) == state, "a refused run must not change the deployment state"

    rollback_dag = load_dag(REPO / "dags" / "blue_green_deploy.py", "rollback")
    rolled = rollback_dag.test()
    assert rolled.state == "success"
    assert sandbox.weights() == {"blue": 100, "green": 0}
    aborted = deployment_state(sandbox)
    assert (aborted.phase, aborted.owner, aborted.generation) == ("aborted", state.owner, state.generation + 1)
    assert aborted.split == {"blue": 100, "green": 0} and aborted.live == "blue"
    assert f"by {owner_of(rollback_dag.dag_id, rolled.run_id)}" in aborted.reason, aborted.reason
    capfd.readouterr()
    again = rollback_dag.test()
    assert again.state == "failed", "nothing left to roll back: the manual rollback says so and changes nothing"
    said = "".join(capfd.readouterr())
    assert "nothing to roll back: already rolled back" in said, said[-3000:]
    assert sandbox.weights() == {"blue": 100, "green": 0}
    assert deployment_state(sandbox) == aborted


def test_failed_migration_aborts_before_any_traffic(deploy, sandbox, service_db):
    result = deploy("v2", dag_file=E2E_DAGS / "variants.py", dag_name="broken_migrations")

    assert result.state == "failed"
    assert result.states["deploy_green"] == "success"
    assert result.states["run_migrations"] == "failed"
    assert result.states["health_check"] == "upstream_failed"
    assert result.states["shift_10"] == "upstream_failed"
    assert result.states["rollback"] == "success"
    assert sandbox.weights() == {"blue": 100, "green": 0}
    assert sandbox.stats()["green"]["requests"] == 0
    state = deployment_state(sandbox)
    assert (state.phase, state.split) == ("rolled_back", {"blue": 100, "green": 0}), state
    assert state.reason.startswith("run_migrations failed"), state.reason
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
    assert result.states["rollback"] == "success"
    assert sandbox.weights() == {"blue": 100, "green": 0}
    assert sandbox.stats()["green"]["requests"] == 0
    state = deployment_state(sandbox)
    assert (state.phase, state.split) == ("rolled_back", {"blue": 100, "green": 0}), state
    assert state.reason.startswith("health_check failed"), state.reason


def test_dry_run_changes_nothing(deploy, sandbox):
    before = alias_versions(sandbox, "production-green")
    records_before = record_sets(sandbox)
    result = deploy("v2", dry_run=True)

    assert result.states["plan"] == "success"
    assert all(state == "skipped" for task, state in result.states.items() if task != "plan"), result.states
    assert alias_versions(sandbox, "production-green") == before
    assert sandbox.weights() == {"blue": 100, "green": 0}
    assert deployment_state(sandbox) is None, "a dry run must not take the service"
    assert record_sets(sandbox) == records_before, "a dry run must not change any record"
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
    state = deployment_state(sandbox)
    # plan, deploy_green, health_check, shift_5, shift_25, shift_100, teardown_blue
    assert (state.phase, state.generation, state.live, state.split) == (
        "retired",
        7,
        "green",
        {"blue": 0, "green": 100},
    ), state

"""The story's deployment, end to end: the real DAG, live sandbox traffic, state read back from AWS.

Each test reads the whole moto state before the run and after it, and names every path it expects
to change; anything else that changed fails the test with the diff.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

import psycopg2
import pytest
from airflow.sdk.serde import deserialize

from bluegreen_provider.localrun import xcom
from bluegreen_provider.state import DeploymentState, owner_of

from .aws_state import (
    ABSENT,
    ALARM_STATES,
    STATE_CHANGES,
    assert_changed_only,
    aws_state_tree,
    diff_aws_state,
    health_check_paths,
    released_paths,
    sandbox_aws_state,
    settled_aws_state,
    state_history,
    weighted_set,
    weighted_sets,
)
from .conftest import E2E_DAGS, FAST, deployment_state, load_dag
from .routers import ROUTERS, dag_of, green_share, rollback_dag_of, traffic, traffic_paths

pytestmark = pytest.mark.e2e

FUNCTIONS = ("lego-api-moc", "lego-api-gallery", "lego-api-wishlist", "lego-api-profile")
GREEN, BLUE = "production-green", "production-blue"


def alias_versions(sandbox, alias: str) -> dict[str, str]:
    lam = sandbox.clients()("lambda")
    return {fn: lam.get_alias(FunctionName=fn, Name=alias)["FunctionVersion"] for fn in FUNCTIONS}


def code_sha(sandbox, fn: str, version: str) -> str:
    return sandbox.clients()("lambda").get_function(FunctionName=fn, Qualifier=version)["Configuration"]["CodeSha256"]


def numbered_versions(state: bytes, fn: str) -> list[str]:
    """The function's published versions in a moto state, oldest first."""
    return sorted((v for v in aws_state_tree(state)["lambda"][fn]["versions"] if v.isdigit()), key=int)


def verdict_of(result, task_id: str) -> dict:
    """What the failing watcher pushed beside its failure: status, rule, message, figures."""
    return xcom(result.dag_id, result.run_id, task_id, key="verdict")


def assert_no_check_attached(state: bytes) -> None:
    """At 100/0 (or 0/100) no weighted set carries a health check (README: health checks and failover)."""
    attached = {slot: r["HealthCheckId"] for slot, r in weighted_sets(state).items() if "HealthCheckId" in r}
    assert not attached, f"health checks left attached at a split without a canary: {attached}"


def assert_rolled_back_green(
    before: bytes, after: bytes, state: DeploymentState, *, alarm_states: str = ALARM_STATES, router: str = "route53"
):
    """A run that released into green and put traffic back on blue: only the state record, green's
    aliases and what the release published (plus the health check the state records) changed;
    blue 100 / green 0 as before, no health check on either set. Returns the diff."""
    diff = assert_changed_only(
        before,
        after,
        *STATE_CHANGES,
        *health_check_paths(state),
        *released_paths(after, GREEN),
        alarm_states,
        *([] if router == "route53" else traffic_paths(router)),
        why="a rolled-back run changed AWS beyond its state record and the candidate's release",
    )
    assert traffic(router, after) == {"blue": 100, "green": 0}
    assert {s: int(r["Weight"]) for s, r in weighted_sets(after).items()} == {"blue": 100, "green": 0}
    assert_no_check_attached(after)
    return diff


def publish_older_versions(sandbox, releases: tuple[str, ...] = ("bad", "unhealthy", "v1")) -> None:
    """Versions 2, 3 and 4 beside the seeded 1, on no alias, as earlier releases leave them behind:
    with the release's 5 there are more than keep_versions, so teardown has one to prune."""
    lam = sandbox.clients()("lambda")
    for fn in FUNCTIONS:
        for name in releases:
            lam.update_function_code(FunctionName=fn, ZipFile=sandbox.catalog[name].zip_bytes)
            lam.publish_version(FunctionName=fn, Description=f"an older release ({name})")


@pytest.mark.parametrize("router", ROUTERS)
def test_happy_path_promotes_green_retains_blue_then_tears_it_down(deploy, sandbox, router):
    publish_older_versions(sandbox)
    before = settled_aws_state(sandbox)
    assert deployment_state(sandbox) is None
    result = deploy("v2", **dag_of(router))

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
    assert result.states["hold"] == "skipped"
    soak = result.xcom("soak_10")
    assert soak["requests"] > 0 and soak["rate_pct"] == 0
    assert result.xcom("approval")["decision"] == "approve"
    assert sandbox.stats()["green"]["errors"] == 0

    after = sandbox_aws_state(sandbox)
    owner = owner_of(result.dag_id, result.run_id)
    green, blue = alias_versions(sandbox, GREEN), alias_versions(sandbox, BLUE)
    # The retention record as teardown wrote it, read back from Route53.
    state = deployment_state(sandbox)
    assert state.owner == owner
    # plan, deploy_green, health_check, shift_10, shift_50, shift_100 (retained), teardown_blue (retired)
    assert (state.phase, state.generation, state.reason) == ("retired", 7, "retired blue"), state
    assert (state.live, state.candidate, state.retained) == ("green", "blue", None), state
    assert state.split == {"blue": 0, "green": 100}
    assert state.versions == {"blue": blue, "green": green}
    assert list(state.health_checks) == ["green"], "the retired slot's check leaves the state; green keeps its own"
    # What shift_100 wrote before it: blue retained for the run's retention, with the versions it serves.
    history = state_history(sandbox)
    assert [s.phase if s else None for s in history] == [
        None,  # the sandbox's seed
        "planned",
        "planned",  # the release recorded
        "planned",  # green's health check recorded
        "shifting",
        "shifting",
        "retained",
        "retired",
    ], history
    assert history[-1] == state
    promoted = history[-2]
    assert (promoted.live, promoted.split, promoted.owner) == ("green", {"blue": 0, "green": 100}, owner), promoted
    assert promoted.retained is not None, promoted
    assert (promoted.retained.slot, promoted.retained.versions, promoted.retained.owner) == ("blue", blue, owner)
    held_for = promoted.retained.until_dt - datetime.fromisoformat(promoted.updated_at)
    assert abs(held_for.total_seconds() - FAST["retention_seconds"]) <= 1, (promoted.retained, promoted.updated_at)

    # Teardown prunes every version no alias serves except the newest keep_versions.
    keep = deserialize(result.xcom("plan"))["spec"]["keep_versions"]
    pruned = {}
    for fn in FUNCTIONS:
        numbered = sorted({*numbered_versions(before, fn), green[fn]}, key=int)
        pruned[fn] = [v for v in numbered[: len(numbered) - keep] if v not in {blue[fn], green[fn]}]
    assert any(pruned.values()), "the older versions should leave teardown something to prune"
    diff = assert_changed_only(
        before,
        after,
        *STATE_CHANGES,
        *traffic_paths(router),
        *health_check_paths(state),
        *released_paths(after, GREEN),
        *(f"lambda/{fn}/versions/{v}" for fn, versions in pruned.items() for v in versions),
        why="a promotion changed AWS beyond the state record, the split, green's release and teardown's pruning",
    )
    # CloudWatch is read, never written: the alarms (definitions and states) are as before.
    assert not diff.matching("cloudwatch/*"), diff
    for fn in FUNCTIONS:
        assert blue[fn] == "1" and code_sha(sandbox, fn, blue[fn]) == sandbox.release_sha256("v1")
        published = aws_state_tree(after)["lambda"][fn]["versions"][green[fn]]
        assert diff[f"lambda/{fn}/versions/{green[fn]}"] == (ABSENT, published), "green serves a new version"
        assert published["CodeSha256"] == sandbox.release_sha256("v2"), published
        assert owner in published["Description"], published["Description"]
        gone = {p for p, (_, new) in diff.matching(f"lambda/{fn}/versions/*").items() if new is ABSENT}
        assert gone == {f"lambda/{fn}/versions/{v}" for v in pruned[fn]}, gone
        kept = [*sorted(set(numbered_versions(before, fn)) - set(pruned[fn]), key=int), green[fn]]
        assert numbered_versions(after, fn) == kept
    assert result.xcom("teardown_blue") == {
        "action": "retired",
        "slot": "blue",
        "health_check_deleted": None,  # blue never had one: no deployment before this one
        "pruned": pruned,
    }
    assert traffic(router, after) == {"blue": 0, "green": 100}
    assert_no_check_attached(after)
    check = aws_state_tree(after)["route53"]["health_checks"][state.health_checks["green"]]
    config = check["check"]["HealthCheckConfig"]
    assert (config["Type"], config["ResourcePath"], config["Port"]) == ("HTTPS", "/health", 443), config
    assert (config["RequestInterval"], config["FailureThreshold"]) == (30, 3), config
    assert config["FullyQualifiedDomainName"] == "production-green.execute-api.us-east-1.amazonaws.com", config
    assert check["tags"] == {"Name": "bluegreen api.lego-mocs.com green", "bluegreen:service": "lego-api"}


@pytest.mark.parametrize("router", ROUTERS)
def test_bad_release_rolls_back_at_10_percent_and_fails_the_run(deploy, sandbox, router):
    before = settled_aws_state(sandbox)
    result = deploy("bad", **dag_of(router))

    assert result.state == "failed"
    assert result.states["soak_10"] == "failed"
    assert result.states["shift_50"] == "upstream_failed"
    assert result.states["approval"] == "upstream_failed"
    # The failing soak's callback restored traffic; the rollback teardown confirms it and succeeds.
    assert result.states["rollback"] == "success"
    rollback = result.xcom("rollback")
    assert rollback["action"] == "nothing" and "already" in rollback["reason"], rollback
    assert rollback["split_now"] == {"blue": 100, "green": 0}
    # The candidate's own error rate failed it (≈30 % > 5 %); at 10 % its errors stay under the alarms.
    verdict = verdict_of(result, "soak_10")
    assert (verdict["status"], verdict["rule"]) == ("breach", "error_rate"), verdict
    assert verdict["figures"]["candidate"]["slot"] == "green", verdict["figures"]
    assert verdict["figures"]["rate_pct"] > verdict["figures"]["threshold_pct"] == 5, verdict["figures"]
    stats = sandbox.stats()
    assert stats["blue"]["errors"] == 0
    assert stats["green"]["errors"] > 0
    print(f"blast radius of the bad release: {stats['green']['errors']} failed of {stats['green']['requests']}")
    state = deployment_state(sandbox)
    assert state.owner == owner_of(result.dag_id, result.run_id)
    assert (state.phase, state.live, state.split) == ("rolled_back", "blue", {"blue": 100, "green": 0}), state
    assert state.reason.startswith("soak_10 failed: soak at 10 % breached (error_rate)"), state.reason
    assert not state.active, "a rolled-back run must not keep the service"

    after = sandbox_aws_state(sandbox)
    assert_rolled_back_green(before, after, state, router=router)
    for fn, version in alias_versions(sandbox, GREEN).items():
        assert code_sha(sandbox, fn, version) == sandbox.release_sha256("bad"), "green keeps the release, at weight 0"
    assert state.versions["blue"] == alias_versions(sandbox, BLUE) == dict.fromkeys(FUNCTIONS, "1")


@pytest.mark.parametrize("router", ROUTERS)
def test_alarm_at_50_percent_rolls_back(deploy, sandbox, router):
    fired = threading.Event()
    alarm = "lego-api-gateway-5xx-errors"

    def fire_when_half() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not fired.is_set():
            if green_share(sandbox, router) == 50:
                sandbox.force_alarm(alarm, reason="5xx spike after the 50 % shift")
                fired.set()
                return
            time.sleep(0.1)

    before = settled_aws_state(sandbox)
    watcher = threading.Thread(target=fire_when_half, daemon=True)
    watcher.start()
    result = deploy("v2", **dag_of(router))
    watcher.join(timeout=1)

    assert fired.is_set()
    assert result.state == "failed"
    assert result.states["soak_10"] == "success"
    assert result.states["soak_50"] == "failed"
    assert result.states["approval"] == "upstream_failed"
    assert result.states["rollback"] == "success"
    verdict = verdict_of(result, "soak_50")
    assert (verdict["status"], verdict["rule"]) == ("breach", "alarm"), verdict
    assert [a["name"] for a in verdict["figures"]["alarms"]] == [alarm], verdict["figures"]
    state = deployment_state(sandbox)
    assert (state.phase, state.live, state.split) == ("rolled_back", "blue", {"blue": 100, "green": 0}), state
    assert state.reason.startswith(f"soak_50 failed: soak at 50 % breached (alarm): alarm {alarm} in ALARM"), (
        state.reason
    )
    # Only the alarm this test forced moved; the release itself raised none.
    diff = assert_rolled_back_green(
        before, sandbox_aws_state(sandbox), state, alarm_states=f"cloudwatch/{alarm}/State*", router=router
    )
    assert diff[f"cloudwatch/{alarm}/StateValue"] == ("OK", "ALARM"), diff
    for fn, version in alias_versions(sandbox, GREEN).items():
        assert code_sha(sandbox, fn, version) == sandbox.release_sha256("v2")


@pytest.mark.parametrize("router", ROUTERS)
def test_rejected_approval_holds_at_50_50_and_blocks_the_next_run_until_rolled_back(deploy, sandbox, capfd, router):
    before = settled_aws_state(sandbox)
    held = deploy("v2", approval="Reject", **dag_of(router))

    assert held.state == "failed"
    assert held.states["approval"] == "success"
    assert held.states["shift_100"] == "skipped"
    assert held.states["hold"] == "failed"
    # The rollback teardown runs, and a hold keeps its split.
    assert held.states["rollback"] == "success"
    rollback = held.xcom("rollback")
    assert rollback["action"] == "nothing" and "a hold keeps its split" in rollback["reason"], rollback
    assert held.xcom("approval")["decision"] == "reject"
    state = deployment_state(sandbox)
    assert state.owner == owner_of(held.dag_id, held.run_id)
    assert (state.phase, state.split) == ("held", {"blue": 50, "green": 50}), state
    assert state.reason.startswith("held: rejected by"), state.reason
    held_aws = sandbox_aws_state(sandbox)
    assert_changed_only(
        before,
        held_aws,
        *STATE_CHANGES,
        *traffic_paths(router, health_check=True),
        *health_check_paths(state),
        *released_paths(held_aws, GREEN),
        why="a held run changed AWS beyond its state record, the split and green's release",
    )
    assert traffic(router, held_aws) == {"blue": 50, "green": 50}
    assert list(state.health_checks) == ["green"], state.health_checks
    if router == "route53":  # at a canary split green's set carries the check the state records
        sets = weighted_sets(held_aws)
        assert (sets["green"].get("HealthCheckId"), sets["blue"].get("HealthCheckId")) == (
            state.health_checks["green"],
            None,
        )

    refused = deploy("v2", **dag_of(router))
    assert refused.states["plan"] == "failed"
    assert refused.states["deploy_green"] == "upstream_failed"
    after_refused = sandbox_aws_state(sandbox)
    assert after_refused == held_aws, f"a refused run changed AWS:\n{diff_aws_state(held_aws, after_refused)}"

    rollback_dag = load_dag(*rollback_dag_of(router))
    rolled = rollback_dag.test()
    assert rolled.state == "success"
    aborted = deployment_state(sandbox)
    assert (aborted.phase, aborted.owner, aborted.generation) == ("aborted", state.owner, state.generation + 1)
    assert aborted.split == {"blue": 100, "green": 0} and aborted.live == "blue"
    assert f"by {owner_of(rollback_dag.dag_id, rolled.run_id)}" in aborted.reason, aborted.reason
    rolled_aws = sandbox_aws_state(sandbox)
    # The manual rollback moves traffic and detaches the check in one batch; aliases stay as they are.
    assert_changed_only(
        held_aws,
        rolled_aws,
        *STATE_CHANGES,
        *traffic_paths(router, health_check=True),
        why="the manual rollback changed AWS beyond the state record and the split",
    )
    assert traffic(router, rolled_aws) == {"blue": 100, "green": 0}
    assert_no_check_attached(rolled_aws)
    capfd.readouterr()
    again = rollback_dag.test()
    assert again.state == "failed", "nothing left to roll back: the manual rollback says so and changes nothing"
    said = "".join(capfd.readouterr())
    assert "nothing to roll back: already rolled back" in said, said[-3000:]
    again_aws = sandbox_aws_state(sandbox)
    assert again_aws == rolled_aws, (
        f"a rollback with nothing to do changed AWS:\n{diff_aws_state(rolled_aws, again_aws)}"
    )


def test_failed_migration_aborts_before_any_traffic(deploy, sandbox, service_db):
    before = settled_aws_state(sandbox)
    result = deploy("v2", dag_file=E2E_DAGS / "variants.py", dag_name="broken_migrations")

    assert result.state == "failed"
    assert result.states["deploy_green"] == "success"
    assert result.states["run_migrations"] == "failed"
    assert result.states["health_check"] == "upstream_failed"
    assert result.states["shift_10"] == "upstream_failed"
    assert result.states["rollback"] == "success"
    assert sandbox.stats()["green"]["requests"] == 0
    state = deployment_state(sandbox)
    assert (state.phase, state.split) == ("rolled_back", {"blue": 100, "green": 0}), state
    assert state.reason.startswith("run_migrations failed"), state.reason
    assert state.health_checks == {}, "the health stage never ran: no check was created"
    assert_rolled_back_green(before, sandbox_aws_state(sandbox), state)
    with psycopg2.connect(service_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM bluegreen_schema_migrations ORDER BY version")
        assert [r[0] for r in cur.fetchall()] == [1]
        cur.execute("SELECT to_regclass('half_done')")
        assert cur.fetchone()[0] is None, "the failed migration left no partial schema"


def test_unhealthy_release_aborts_before_any_traffic(deploy, sandbox):
    before = settled_aws_state(sandbox)
    result = deploy("unhealthy", dag_file=E2E_DAGS / "variants.py", dag_name="quick_health")

    assert result.state == "failed"
    assert result.states["health_check"] == "failed"
    assert result.states["shift_10"] == "upstream_failed"
    assert result.states["rollback"] == "success"
    assert sandbox.stats()["green"]["requests"] == 0
    state = deployment_state(sandbox)
    assert (state.phase, state.split) == ("rolled_back", {"blue": 100, "green": 0}), state
    # The HTTP probe failed (the release answers /health with 503); the Route53 check was created first.
    assert state.reason.startswith("health_check failed: health probe of green failed"), state.reason
    assert list(state.health_checks) == ["green"], state.health_checks
    assert_rolled_back_green(before, sandbox_aws_state(sandbox), state)


def test_dry_run_changes_nothing(deploy, sandbox):
    before = settled_aws_state(sandbox)
    result = deploy("v2", dry_run=True)

    assert result.states["plan"] == "success"
    assert all(state == "skipped" for task, state in result.states.items() if task != "plan"), result.states
    assert deployment_state(sandbox) is None, "a dry run must not take the service"
    # Byte for byte: no state record or lock, no version, alias, health check, tag or alarm change.
    after = sandbox_aws_state(sandbox)
    assert after == before, f"a dry run changed AWS:\n{diff_aws_state(before, after)}"
    changes = result.xcom("plan")["changes"]
    assert any("shift" in c["stage"] for c in changes), changes


def test_any_step_list_shapes_the_stages(deploy, sandbox):
    before = settled_aws_state(sandbox)
    result = deploy(
        "v2",
        dag_file=E2E_DAGS / "variants.py",
        dag_name="five_25_100",
        steps=[{"weight": 5, "soak_seconds": 3}, {"weight": 25, "soak_seconds": 3}, {"weight": 100}],
        min_requests=2,
    )

    assert result.state == "success", result.states
    assert {"shift_5", "soak_5", "shift_25", "soak_25", "shift_100"} <= set(result.states)
    state = deployment_state(sandbox)
    # plan, deploy_green, health_check, shift_5, shift_25, shift_100, teardown_blue
    assert (state.phase, state.generation, state.live, state.split, state.retained) == (
        "retired",
        7,
        "green",
        {"blue": 0, "green": 100},
        None,
    ), state
    assert [s.split["green"] for s in state_history(sandbox)[1:] if s.phase == "shifting"] == [5, 25]
    after = sandbox_aws_state(sandbox)
    # Versions 1 (blue) and 2 (green) are all there is: within keep_versions, nothing is pruned.
    assert_changed_only(
        before,
        after,
        *STATE_CHANGES,
        weighted_set("blue", "Weight"),
        weighted_set("green", "Weight"),
        *health_check_paths(state),
        *released_paths(after, GREEN),
        why="a promotion changed AWS beyond the state record, the split and green's release",
    )
    assert {s: int(r["Weight"]) for s, r in weighted_sets(after).items()} == {"blue": 0, "green": 100}
    assert_no_check_attached(after)
    for fn in FUNCTIONS:
        assert numbered_versions(after, fn) == ["1", "2"], fn

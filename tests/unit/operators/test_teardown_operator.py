from __future__ import annotations

from datetime import datetime

import pytest
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.operators.health import HealthCheckOperator
from bluegreen_provider.rollback import emergency_rollback
from bluegreen_provider.soak import Soak
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import Phase
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

MOCS = "lego-api-mocs"
STEPS = (10, 50, 100)


def _attach_health_check(world, colour: str) -> str:
    check = world.route53.create_health_check(
        CallerReference=f"lego-api-{colour}",
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": f"{colour}.api.lego-mocs.com",
            "Port": 443,
            "ResourcePath": "/health",
            "RequestInterval": 30,
            "FailureThreshold": 3,
        },
    )["HealthCheck"]["Id"]
    Route53Hook().set_health_check(world.zone_id, "api.lego-mocs.com", "A", colour, check, comment="test")
    return check


# Slots whose health stage creates a Route53 check (no health_url: the HTTP probe is skipped).
CHECKED_SLOTS = {
    colour: {
        "set_identifier": colour,
        "alias": f"production-{colour}",
        "health_check_fqdn": f"production-{colour}.execute-api.us-east-1.amazonaws.com",
    }
    for colour in ("blue", "green")
}


def _earlier_deployments_check(world, run, colour: str) -> str:
    """The check a previous deployment's health stage recorded for ``colour`` when it was the candidate."""
    check = world.route53.create_health_check(
        CallerReference=f"bluegreen-{colour}-earlier",
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": f"production-{colour}.execute-api.us-east-1.amazonaws.com",
            "Port": 443,
            "ResourcePath": "/health",
        },
    )["HealthCheck"]["Id"]
    world.force(run.owner, "planned", 100, 0, health_checks={colour: check})
    return check


def _publish_old_release(world) -> None:
    """Version 2 (bad) exists before the deployment and no alias uses it."""
    for fn in world.functions:
        world.lam.update_function_code(FunctionName=fn, ZipFile=world.zips["bad"].read_bytes())
        world.lam.publish_version(FunctionName=fn)


def _until(world) -> datetime:
    return datetime.fromisoformat(world.state().retained.until)


def test_teardown_with_the_guard_off_defers_to_the_absolute_end_of_retention(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=3600, post_promotion_policy="off"), upto=STEPS)
    before = world.snapshot()
    with pytest.raises(TaskDeferred) as deferred:
        run.execute(stages.teardown())
    trigger = deferred.value.trigger
    assert isinstance(trigger, DateTimeTrigger)
    assert trigger.moment == _until(world)
    assert trigger.end_from_trigger is False
    assert trigger.serialize()[1]["moment"] == _until(world)
    assert deferred.value.method_name == "execute_complete"
    assert world.snapshot() == before


def test_teardown_guards_the_new_live_slot_until_the_end_of_retention(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=3600), upto=STEPS)
    before = world.snapshot()
    with pytest.raises(TaskDeferred) as deferred:
        run.execute(stages.teardown())
    trigger = deferred.value.trigger
    assert isinstance(trigger, ErrorRateTrigger) and deferred.value.method_name == "guard_complete"
    kwargs = trigger.serialize()[1]
    assert kwargs["mode"] == "guard"
    soak = Soak.from_dict(kwargs["soak"])
    # The new live slot, alone (the retained slot has no traffic to compare with), until the retention ends.
    assert (soak.candidate.slot, soak.baseline, soak.stage_pct) == ("green", None, 100)
    assert soak.soak_end == _until(world)
    assert world.snapshot() == before


BREACH = {
    "status": "breach",
    "rule": "alarm",
    "message": "alarm lego-api-5xx in ALARM: 5xx spike",
    "figures": {},
    "detected_at": "2026-01-01T00:00:00+00:00",
}


def test_post_promotion_breach_rolls_back_to_the_retained_slot(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=3600), upto=STEPS)
    op = stages.teardown()
    with pytest.raises(TaskDeferred):
        run.execute(op)
    with pytest.raises(AirflowFailException, match="POST-PROMOTION ROLLBACK: alarm after promotion"):
        op.guard_complete(run.context(op), BREACH)
    state = world.state()
    assert (state.phase, state.live, state.split) == (Phase.ABORTED, "blue", {"blue": 100, "green": 0}), state
    assert state.retained is None and state.reason.startswith("post-promotion guard: alarm after promotion")
    assert world.split() == {"blue": 100, "green": 0}
    assert run.xcom("teardown_blue", "verdict")["rule"] == "alarm"
    assert run.xcom("teardown_blue", "rollback")["split_after"] == {"blue": 100, "green": 0}


def test_post_promotion_breach_with_policy_notify_changes_nothing(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=3600, post_promotion_policy="notify"), upto=STEPS)
    op = stages.teardown()
    with pytest.raises(TaskDeferred):
        run.execute(op)
    before = world.snapshot()
    with pytest.raises(AirflowFailException, match="Not rolling back \\(post_promotion_policy=notify\\)"):
        op.guard_complete(run.context(op), BREACH)
    assert world.snapshot() == before
    assert world.state().phase == Phase.RETAINED


def test_post_promotion_breach_of_a_run_no_longer_owning_the_service_changes_nothing(world, new_run, stages):
    first, second = new_run("run1"), new_run("run2")
    stages.release(first, world.spec(retention_seconds=3600), upto=STEPS)
    op = stages.teardown()
    with pytest.raises(TaskDeferred):
        first.execute(op)
    second.execute(stages.plan(world.spec(retention_seconds=3600)))  # a new deployment takes the service
    before = world.snapshot()
    result = op.guard_complete(first.context(op), BREACH)
    assert result["action"] == "nothing" and "owns" in result["reason"], result
    assert world.snapshot() == before


def test_guard_that_ends_clean_retires_the_old_slot(world, new_run, stages, clock):
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=3600, keep_versions=0), upto=STEPS)
    op = stages.teardown()
    with pytest.raises(TaskDeferred):
        run.execute(op)
    clock(3601)
    result = op.guard_complete(run.context(op), {"status": "clean", "summary": {}})
    assert result["action"] == "retired", result
    assert world.state().phase == Phase.RETIRED


def test_teardown_retires_the_old_slot_when_retention_ends(world, new_run, stages, clock):
    _publish_old_release(world)
    run = new_run("run1")
    run.execute(stages.plan(world.spec(retention_seconds=3600, keep_versions=0, slots=CHECKED_SLOTS)))
    blue_check = _earlier_deployments_check(world, run, "blue")
    run.execute(stages.deploy())
    green_check = run.execute(HealthCheckOperator(task_id="health_check"))["route53_health_check_id"]
    for pct in STEPS:
        run.execute(stages.shift(pct))
    assert world.state().health_checks == {"blue": blue_check, "green": green_check}
    op = stages.teardown()
    with pytest.raises(TaskDeferred) as deferred:
        run.execute(op)
    generation = world.state().generation
    clock(3601)  # the trigger fires at the deadline
    result = run.complete(op, {"status": "success"}, **(deferred.value.kwargs or {}))

    assert result["action"] == "retired" and result["slot"] == "blue"
    assert result["health_check_deleted"] == blue_check
    assert [c["Id"] for c in world.route53.list_health_checks()["HealthChecks"]] == [green_check]
    assert "HealthCheckId" not in world.sets()["blue"] and "HealthCheckId" not in world.sets()["green"]
    assert result["pruned"] == {fn: ["2"] for fn in world.functions}
    for fn in world.functions:
        assert sorted(world.versions(fn)) == ["1", "3"]  # blue's and green's versions are protected
    assert world.aliases("blue") == {fn: "1" for fn in world.functions}
    assert world.split() == {"blue": 0, "green": 100}
    state = world.state()
    assert (state.owner, state.phase, state.retained, state.generation) == (
        run.owner,
        Phase.RETIRED,
        None,
        generation + 1,
    )
    assert state.split == world.split()
    assert state.health_checks == {"green": green_check}  # the live slot keeps its check for the next canary

    before = world.snapshot()
    again = run.execute(op)  # re-run: nothing is retained any more, nothing left to do
    assert again["action"] == "nothing" and "retired" in again["reason"]
    assert world.snapshot() == before


def test_teardown_right_away_when_retention_is_already_over(world, new_run, stages, clock):
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=60), upto=STEPS)
    clock(61)
    result = run.execute(stages.teardown())
    assert result["action"] == "retired"
    assert world.state().phase == Phase.RETIRED and world.state().retained is None


def test_teardown_does_nothing_when_nothing_was_retained(world, new_run, stages):
    check = _attach_health_check(world, "blue")
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=0), upto=STEPS)
    assert (world.state().phase, world.state().retained) == (Phase.PROMOTED, None)
    before = world.snapshot()
    result = run.execute(stages.teardown())
    assert result["action"] == "nothing" and "promoted" in result["reason"]
    assert world.snapshot() == before
    assert [c["Id"] for c in world.route53.list_health_checks()["HealthChecks"]] == [check]


def test_teardown_does_nothing_after_a_rollback_to_the_old_slot(world, new_run, stages, clock):
    _publish_old_release(world)
    check = _attach_health_check(world, "blue")
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=3600, keep_versions=0), upto=STEPS)
    # emergency: traffic back on the retained blue
    emergency_rollback(Route53Hook(), LambdaAliasHook(), DeploymentSpec.from_dict(world.spec()), by="oncall")
    assert world.split() == {"blue": 100, "green": 0}
    clock(3601)
    before = world.snapshot()
    result = run.execute(stages.teardown())
    assert result["action"] == "nothing"
    assert "aborted" in result["reason"]
    assert world.snapshot() == before
    assert [c["Id"] for c in world.route53.list_health_checks()["HealthChecks"]] == [check]


def test_teardown_does_nothing_when_a_newer_release_reused_the_slot(world, new_run, stages, clock):
    _publish_old_release(world)
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=3600, keep_versions=0), upto=STEPS)
    stages.release(new_run("run2"), world.spec("bad"))  # run2 releases into blue, ending the retention
    assert world.aliases("blue") == {fn: "2" for fn in world.functions}
    clock(3601)
    before = world.snapshot()
    result = run.execute(stages.teardown())
    assert result["action"] == "nothing"
    assert "bluegreen_deploy/run2" in result["reason"] and "planned" in result["reason"]
    assert world.snapshot() == before


def test_teardown_does_nothing_when_the_state_belongs_to_another_run(world, new_run, stages):
    old = new_run("run1")
    stages.release(old, world.spec(retention_seconds=3600), upto=STEPS)
    stages.release(new_run("run2"), world.spec("v1", retention_seconds=3600), upto=STEPS)
    before = world.snapshot()
    result = old.execute(stages.teardown())  # run2's retention is not run1's to wait for or retire
    assert result == {
        "action": "nothing",
        "slot": "blue",
        "reason": "the service is retained by run bluegreen_deploy/run2",
    }
    assert world.snapshot() == before


def test_teardown_does_nothing_when_the_run_never_promoted(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    before = world.snapshot()
    result = run.execute(stages.teardown())
    assert result["action"] == "nothing" and "shifting by run bluegreen_deploy/run1" in result["reason"]
    assert world.snapshot() == before

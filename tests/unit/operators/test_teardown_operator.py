from __future__ import annotations

from datetime import datetime

import pytest
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk.exceptions import TaskDeferred

from bluegreen_provider.hooks.route53 import Route53Hook

RETAIN_KEY = "bluegreen:retained:api.lego-mocs.com"
MOCS = "lego-api-mocs"


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


def _publish_old_release(world) -> None:
    """Version 2 (bad) exists before the deployment and no alias uses it."""
    for fn in world.functions:
        world.lam.update_function_code(FunctionName=fn, ZipFile=world.zips["bad"].read_bytes())
        world.lam.publish_version(FunctionName=fn)


def _until(world) -> datetime:
    value = dict(p.split("=", 1) for p in world.tags()[RETAIN_KEY].split())["until"]
    return datetime.fromisoformat(value)


def test_teardown_defers_to_the_absolute_end_of_retention(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=3600), upto=(10, 50, 100))
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


def test_teardown_retires_the_old_slot_when_retention_ends(world, new_run, stages):
    _publish_old_release(world)
    blue_check = _attach_health_check(world, "blue")
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=3600, keep_versions=0), upto=(10, 50, 100))
    op = stages.teardown()
    with pytest.raises(TaskDeferred) as deferred:
        run.execute(op)
    result = run.complete(op, {"status": "success"}, **(deferred.value.kwargs or {}))

    assert result["action"] == "retired" and result["slot"] == "blue"
    assert result["health_check_deleted"] == blue_check
    assert world.route53.list_health_checks()["HealthChecks"] == []
    assert "HealthCheckId" not in world.sets()["blue"]
    assert result["pruned"] == {fn: ["2"] for fn in world.functions}
    for fn in world.functions:
        assert sorted(world.versions(fn)) == ["1", "3"]  # blue's and green's versions are protected
    assert world.aliases("blue") == {fn: "1" for fn in world.functions}
    assert world.split() == {"blue": 0, "green": 100}
    assert RETAIN_KEY not in world.tags()

    again = run.execute(op)  # re-run: the record is gone, nothing left to do
    assert again["action"] == "nothing"


def test_teardown_right_away_when_retention_is_already_over(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=0), upto=(100,))
    result = run.execute(stages.teardown())
    assert result["action"] == "retired"
    assert RETAIN_KEY not in world.tags()


def test_teardown_does_nothing_after_a_rollback_to_the_old_slot(world, new_run, stages):
    _publish_old_release(world)
    check = _attach_health_check(world, "blue")
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=0, keep_versions=0), upto=(100,))
    world.set_split(100, 0)  # emergency: traffic back on blue (record kept)
    before = world.snapshot()
    result = run.execute(stages.teardown())
    assert result["action"] == "nothing"
    assert "blue takes traffic again (blue 100 / green 0)" in result["reason"]
    assert world.snapshot() == before
    assert [c["Id"] for c in world.route53.list_health_checks()["HealthChecks"]] == [check]


def test_teardown_does_nothing_when_a_newer_release_reused_the_slot(world, new_run, stages):
    _publish_old_release(world)
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=0, keep_versions=0), upto=(100,))
    world.lam.update_alias(FunctionName=MOCS, Name="production-blue", FunctionVersion="2")
    before = world.snapshot()
    result = run.execute(stages.teardown())
    assert result["action"] == "nothing"
    assert "a newer release reused slot blue" in result["reason"] and "1 -> 2" in result["reason"]
    assert world.snapshot() == before


def test_teardown_does_nothing_when_the_record_belongs_to_another_run(world, new_run, stages):
    old = new_run("run1")
    stages.release(old, world.spec(retention_seconds=3600), upto=(100,))
    stages.release(new_run("run2"), world.spec("v1", retention_seconds=3600), upto=(100,))
    before = world.snapshot()
    result = old.execute(stages.teardown())
    assert result == {
        "action": "nothing",
        "slot": "blue",
        "reason": "the retention record belongs to run bluegreen_deploy/run2",
    }
    assert world.snapshot() == before


def test_teardown_does_nothing_when_the_run_never_promoted(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    result = run.execute(stages.teardown())
    assert result["action"] == "nothing" and "no retention record" in result["reason"]

from __future__ import annotations

import json
import logging

import pytest
from airflow.sdk import TriggerRule
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.plan import Plan
from bluegreen_provider.records import DeploymentRecords
from bluegreen_provider.rollback import (
    NothingToRollBack,
    RollbackRefused,
    manual_rollback,
    restore_live,
    rollback_on_failure,
)
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.triggers.route53 import Route53ChangeTrigger

LOCK_KEY = "bluegreen:lock:api.lego-mocs.com"
RETAIN_KEY = "bluegreen:retained:api.lego-mocs.com"


@pytest.fixture
def task_states(monkeypatch):
    """What Airflow reports for this run's task instances, as ``get_task_states`` returns it."""
    states: dict[str, str] = {}

    def get_task_states(dag_id, map_index=None, task_ids=None, task_group_id=None, logical_dates=None, run_ids=None):
        return {run_ids[0]: dict(states)}

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
    return states


# -- restore_live ------------------------------------------------------------------------------
def test_restore_live_is_idempotent_and_releases_the_lock(world, new_run, stages):
    run = new_run("run1")
    plan = Plan.from_dict(stages.release(run, world.spec(), upto=(10, 50)))
    first = restore_live(Route53Hook(), plan, reason="soak_50 failed", owner=run.owner)
    assert first["changed"] is True and first["lock_released"] is True
    assert first["split_before"] == {"blue": 50, "green": 50}
    assert first["split_after"] == {"blue": 100, "green": 0}
    assert world.split() == {"blue": 100, "green": 0}
    assert LOCK_KEY not in world.tags()

    before = world.snapshot()
    second = restore_live(Route53Hook(), plan, reason="again", owner=run.owner)
    assert second["changed"] is False and second["change_id"] is None
    assert world.snapshot() == before


def test_restore_live_never_touches_traffic_another_run_owns(world, new_run, stages):
    run = new_run("run1")
    plan = Plan.from_dict(stages.release(run, world.spec(), upto=(10,)))
    records = DeploymentRecords(Route53Hook(), world.zone_id, plan.spec)
    records.release(run.owner)
    records.acquire("bluegreen_deploy/run2", "blue", is_active=lambda lock: True)
    before = world.snapshot()
    with pytest.raises(RollbackRefused, match="run run2 of DAG bluegreen_deploy owns"):
        restore_live(Route53Hook(), plan, reason="late", owner=run.owner)
    assert world.snapshot() == before


def test_restore_live_does_not_undo_a_promotion(world, new_run, stages):
    run = new_run("run1")
    plan = Plan.from_dict(stages.release(run, world.spec(), upto=(10, 50, 100)))
    before = world.snapshot()
    with pytest.raises(RollbackRefused, match=r"this run promoted green; .* use the manual rollback"):
        restore_live(Route53Hook(), plan, reason="teardown failed", owner=run.owner)
    assert world.snapshot() == before


# -- the rollback task ---------------------------------------------------------------------------
def test_rollback_task_restores_traffic_then_fails_the_run(world, new_run, stages, task_states):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    task_states.update({"plan": "success", "shift_10": "success", "shift_50": "success", "soak_50": "failed"})
    op = stages.rollback()
    assert op.trigger_rule == TriggerRule.ONE_FAILED
    with pytest.raises(
        AirflowFailException,
        match=r"ROLLED BACK after soak_50 failed: traffic restored to blue "
        r"\(blue 50 / green 50 -> blue 100 / green 0\)",
    ):
        run.execute(op)
    assert world.split() == {"blue": 100, "green": 0}
    assert LOCK_KEY not in world.tags()

    with pytest.raises(AirflowFailException, match="ROLLED BACK after soak_50 failed: traffic had moved"):
        run.execute(op)  # cleared and re-run: nothing changes, still fails the run
    assert world.split() == {"blue": 100, "green": 0}


def test_rollback_task_when_nothing_had_shifted(world, new_run, stages, task_states):
    run = new_run("run1")
    run.execute(stages.plan(world.spec()))
    task_states.update({"plan": "success", "deploy_green": "failed", "shift_10": "upstream_failed"})
    with pytest.raises(
        AirflowFailException, match="deploy_green failed; traffic was never shifted; nothing to roll back"
    ):
        run.execute(stages.rollback())
    assert world.split() == {"blue": 100, "green": 0}
    assert LOCK_KEY not in world.tags()


def test_rollback_task_without_a_plan(world, new_run, stages, task_states):
    task_states.update({"plan": "failed"})
    before = world.snapshot()
    with pytest.raises(AirflowFailException, match=r"deployment refused before any change.*Failed: plan"):
        new_run("run1").execute(stages.rollback())
    assert world.snapshot() == before


def test_rollback_task_defers_until_insync(world, new_run, stages, task_states, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    task_states.update({"shift_10": "success", "soak_10": "failed"})
    op = stages.rollback()
    with monkeypatch.context() as m:
        m.setattr(Route53Hook, "get_change_status", lambda self, change_id: "PENDING")
        with pytest.raises(TaskDeferred) as deferred:
            run.execute(op)
    assert isinstance(deferred.value.trigger, Route53ChangeTrigger)
    assert world.split() == {"blue": 100, "green": 0}
    assert LOCK_KEY in world.tags()  # kept until Route53 confirms
    event = {"status": "success", "change_id": deferred.value.trigger.change_id}
    with pytest.raises(
        AirflowFailException, match=r"ROLLED BACK after soak_10 failed: .*blue 90 / green 10 -> blue 100"
    ):
        run.complete(op, event, **deferred.value.kwargs)
    assert LOCK_KEY not in world.tags()


# -- the failure callback ------------------------------------------------------------------------
def test_failure_callback_restores_and_the_task_then_reports_it(world, new_run, stages, task_states, caplog):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    soak = stages.shift(10, task_id="soak_10")
    with caplog.at_level(logging.WARNING, logger="bluegreen_provider.rollback"):
        rollback_on_failure(run.context(soak, exception=RuntimeError("error rate 7.5% > 5%")))
    assert world.split() == {"blue": 100, "green": 0}
    assert "AUTOMATIC ROLLBACK after soak_10 failed: traffic blue 90 / green 10 -> blue 100 / green 0" in caplog.text
    task_states.update({"shift_10": "success", "soak_10": "failed"})
    with pytest.raises(AirflowFailException, match=r"traffic had moved \(shift_10\).*callback restored it"):
        run.execute(stages.rollback())


def test_failure_callback_never_raises(world, new_run, stages, monkeypatch, caplog):
    rollback_on_failure({})  # not even a task instance
    run = new_run("run1")
    deploy = stages.deploy()
    with caplog.at_level(logging.WARNING, logger="bluegreen_provider.rollback"):
        rollback_on_failure(run.context(deploy))
    assert "failed before any traffic moved; nothing to roll back" in caplog.text

    stages.release(run, world.spec(), upto=(10,))

    def broken(self, *args, **kwargs):
        raise ConnectionError("route53.amazonaws.com unreachable")

    monkeypatch.setattr(Route53Hook, "set_split", broken)
    with caplog.at_level(logging.ERROR, logger="bluegreen_provider.rollback"):
        rollback_on_failure(run.context(deploy))
    assert "AUTOMATIC ROLLBACK after deploy_green FAILED" in caplog.text
    assert world.split() == {"blue": 90, "green": 10}


# -- manual rollback -----------------------------------------------------------------------------
def test_manual_rollback_of_a_deployment_in_progress(world, new_run, stages):
    stages.release(new_run("run1"), world.spec(), upto=(10, 50))
    result = manual_rollback(Route53Hook(), DeploymentSpec.from_dict(world.spec()))
    assert result["action"] == "restored_live" and result["slot"] == "blue"
    assert result["owner"] == "bluegreen_deploy/run1"
    assert world.split() == {"blue": 100, "green": 0}
    assert LOCK_KEY not in world.tags()


def test_a_run_rolled_back_by_hand_never_shifts_again(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    manual_rollback(Route53Hook(), DeploymentSpec.from_dict(world.spec()))
    with pytest.raises(AirflowFailException, match=r"was rolled back by hand at .*Start a new deployment run"):
        run.execute(stages.shift(50))
    assert world.split() == {"blue": 100, "green": 0}
    assert LOCK_KEY not in world.tags()

    stages.release(new_run("run2"), world.spec(), upto=(10,))  # a new run deploys as usual
    assert world.split() == {"blue": 90, "green": 10}


def test_manual_rollback_after_promotion_returns_to_the_retained_slot(world, new_run, stages):
    stages.release(new_run("run1"), world.spec(), upto=(10, 50, 100))
    spec = DeploymentSpec.from_dict(world.spec())
    result = manual_rollback(Route53Hook(), spec, zone_id=world.zone_id)
    assert result["action"] == "restored_retained" and result["slot"] == "blue"
    assert result["split_before"] == {"blue": 0, "green": 100}
    assert world.split() == {"blue": 100, "green": 0}
    assert RETAIN_KEY not in world.tags()

    before = world.snapshot()
    with pytest.raises(NothingToRollBack, match=r"nothing to roll back to: .*traffic reads blue 100 / green 0"):
        manual_rollback(Route53Hook(), spec)
    assert world.snapshot() == before


def test_manual_rollback_after_retention_ended(world, new_run, stages):
    stages.release(new_run("run1"), world.spec(retention_seconds=0), upto=(100,))
    before = world.snapshot()
    with pytest.raises(NothingToRollBack, match="retention of blue ended at"):
        manual_rollback(Route53Hook(), DeploymentSpec.from_dict(world.spec()))
    assert world.snapshot() == before


def test_manual_rollback_operator_waits_on_the_triggerer(world, new_run, stages, monkeypatch):
    from bluegreen_provider.operators.rollback import ManualRollbackOperator

    stages.release(new_run("run1"), world.spec(), upto=(10, 50))
    op = ManualRollbackOperator(task_id="rollback", spec=world.spec())
    button = new_run("manual__1", dag_id="bluegreen_rollback")
    with monkeypatch.context() as m:
        m.setattr(Route53Hook, "get_change_status", lambda self, change_id: "PENDING")
        with pytest.raises(TaskDeferred) as deferred:
            button.execute(op)
    assert world.split() == {"blue": 100, "green": 0}
    assert LOCK_KEY in world.tags()  # released once Route53 confirms
    result = button.complete(op, {"status": "success"}, **deferred.value.kwargs)
    assert result["action"] == "restored_live" and result["lock_released"] is True
    assert LOCK_KEY not in world.tags()

    with pytest.raises(AirflowFailException, match="nothing to roll back to"):
        button.execute(op)  # pressed again: nothing changes, and it says so
    assert world.split() == {"blue": 100, "green": 0}


def test_manual_rollback_operator_after_promotion(world, new_run, stages):
    from bluegreen_provider.operators.rollback import ManualRollbackOperator

    stages.release(new_run("run1"), world.spec(), upto=(100,))
    op = ManualRollbackOperator(task_id="rollback", spec=json.dumps(world.spec()))
    result = new_run("manual__1", dag_id="bluegreen_rollback").execute(op)
    assert result["action"] == "restored_retained"
    assert world.split() == {"blue": 100, "green": 0}
    assert RETAIN_KEY not in world.tags()

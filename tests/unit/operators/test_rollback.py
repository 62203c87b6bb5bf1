from __future__ import annotations

import json
import logging

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.rollback import emergency_rollback, rollback_on_failure
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import NothingToDo, Phase, rollback
from bluegreen_provider.triggers.route53 import Route53ChangeTrigger

STEPS = (10, 50, 100)


def _press(world, **spec):
    """The emergency button, as the CLI and the rollback DAG press it."""
    return emergency_rollback(
        Route53Hook(), LambdaAliasHook(), DeploymentSpec.from_dict(world.spec(**spec)), by="oncall"
    )


# -- the run's own rollback transition -------------------------------------------------------------
def test_rollback_is_idempotent_and_records_the_rollback(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    first = rollback(world.service(), run.owner, "soak_50 failed")
    assert first.split_changed is True
    assert first.before.split == {"blue": 50, "green": 50}
    assert first.state.split == {"blue": 100, "green": 0}
    assert world.split() == {"blue": 100, "green": 0}
    state = world.state()
    assert (state.owner, state.phase, state.live, state.reason) == (
        run.owner,
        Phase.ROLLED_BACK,
        "blue",
        "soak_50 failed",
    )
    assert state.generation == first.state.generation

    before = world.snapshot()
    with pytest.raises(NothingToDo, match=r"traffic already on blue \(blue 100 / green 0; rolled_back\)"):
        rollback(world.service(), run.owner, "again")
    assert world.snapshot() == before


def test_rollback_never_touches_traffic_another_run_owns(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    rollback(world.service(), run.owner, "soak_10 failed")
    stages.release(new_run("run2"), world.spec(), upto=(10,))  # run2 took the service and shifted
    before = world.snapshot()
    with pytest.raises(NothingToDo, match=r"run bluegreen_deploy/run2 \(shifting, .*\) owns lego-api now"):
        rollback(world.service(), run.owner, "late")
    assert world.snapshot() == before
    assert world.split() == {"blue": 90, "green": 10}


def test_rollback_does_not_undo_a_promotion(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=STEPS)
    before = world.snapshot()
    with pytest.raises(NothingToDo, match=r"this run promoted green; automatic rollback does not undo a promotion"):
        rollback(world.service(), run.owner, "teardown failed")
    assert world.snapshot() == before


# -- the rollback task (the run's teardown) ---------------------------------------------------------
def test_rollback_task_restores_traffic_and_succeeds(world, new_run, stages, task_states):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    task_states.update({"plan": "success", "shift_10": "success", "shift_50": "success", "soak_50": "failed"})
    op = stages.rollback()
    result = run.execute(op)
    assert result["action"] == "rolled_back" and result["changed"] is True
    assert result["split_before"] == {"blue": 50, "green": 50}
    assert result["split_after"] == result["split_now"] == {"blue": 100, "green": 0}
    assert result["live"] == "blue" and result["owner"] == run.owner
    assert result["reason"] == "rollback task after soak_50"
    assert world.split() == {"blue": 100, "green": 0}
    state = world.state()
    assert (state.phase, state.generation, state.split) == (Phase.ROLLED_BACK, result["generation"], world.split())

    before = world.snapshot()
    again = run.execute(op)  # cleared and re-run: nothing changes, and it says so
    assert again["action"] == "nothing" and "traffic already on blue" in again["reason"]
    assert again["split_now"] == {"blue": 100, "green": 0}
    assert world.snapshot() == before


def test_rollback_task_when_nothing_had_shifted(world, new_run, stages, task_states):
    run = new_run("run1")
    run.execute(stages.plan(world.spec()))
    task_states.update({"plan": "success", "deploy_green": "failed", "shift_10": "upstream_failed"})
    result = run.execute(stages.rollback())
    assert result["action"] == "rolled_back" and result["changed"] is False
    assert result["split_before"] == result["split_after"] == {"blue": 100, "green": 0}
    assert world.split() == {"blue": 100, "green": 0}
    assert world.state().phase == Phase.ROLLED_BACK  # the run's deployment is over; a new run may plan


def test_rollback_task_without_a_plan(world, new_run, stages, task_states):
    task_states.update({"plan": "failed"})
    before = world.snapshot()
    result = new_run("run1").execute(stages.rollback())
    assert result == {"action": "nothing", "reason": "the plan did not complete; traffic was not touched"}
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
    assert world.split() == {"blue": 100, "green": 0}  # submitted; only propagation is awaited
    assert world.state().phase == Phase.ROLLED_BACK
    event = {"status": "success", "change_id": deferred.value.trigger.change_id}
    result = run.complete(op, event, **deferred.value.kwargs)
    assert result["action"] == "rolled_back"
    assert result["split_before"] == {"blue": 90, "green": 10}
    assert result["split_now"] == {"blue": 100, "green": 0}


def test_rollback_task_fails_when_route53_never_confirms(world, new_run, stages, task_states, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    task_states.update({"soak_10": "failed"})
    op = stages.rollback()
    monkeypatch.setattr(Route53Hook, "get_change_status", lambda self, change_id: "PENDING")
    with pytest.raises(TaskDeferred) as deferred:
        run.execute(op)
    event = {"status": "timeout", "message": "still PENDING after 30s"}
    with pytest.raises(
        AirflowFailException, match=r"rollback submitted \(blue 100 / green 0\) but Route53 did not confirm INSYNC"
    ):
        run.complete(op, event, **deferred.value.kwargs)


# -- the failure callback ------------------------------------------------------------------------
def test_failure_callback_restores_and_the_task_then_reports_it(world, new_run, stages, task_states, caplog):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    soak = stages.shift(10, task_id="soak_10")
    with caplog.at_level(logging.WARNING, logger="bluegreen_provider.rollback"):
        rollback_on_failure(run.context(soak, exception=RuntimeError("error rate 7.5% > 5%")))
    assert world.split() == {"blue": 100, "green": 0}
    assert "AUTOMATIC ROLLBACK after soak_10 failed: traffic blue 90 / green 10 -> blue 100 / green 0" in caplog.text
    state = world.state()
    assert (state.owner, state.phase) == (run.owner, Phase.ROLLED_BACK)
    assert state.reason == "soak_10 failed: error rate 7.5% > 5%"
    task_states.update({"shift_10": "success", "soak_10": "failed"})
    before = world.snapshot()
    result = run.execute(stages.rollback())
    assert result["action"] == "nothing" and "traffic already on blue" in result["reason"]
    assert world.snapshot() == before


def test_failure_callback_never_raises(world, new_run, stages, monkeypatch, caplog):
    rollback_on_failure({})  # not even a task instance
    run = new_run("run1")
    deploy = stages.deploy()
    with caplog.at_level(logging.WARNING, logger="bluegreen_provider.rollback"):
        rollback_on_failure(run.context(deploy))
    assert "failed before any traffic moved; nothing to roll back" in caplog.text

    stages.release(run, world.spec(), upto=(10,))
    before = world.snapshot()

    def broken(self, *args, **kwargs):
        raise ConnectionError("route53.amazonaws.com unreachable")

    monkeypatch.setattr(Route53Hook, "change_batch", broken)
    with caplog.at_level(logging.ERROR, logger="bluegreen_provider.rollback"):
        rollback_on_failure(run.context(deploy))
    assert "AUTOMATIC ROLLBACK after deploy_green FAILED" in caplog.text
    assert world.split() == {"blue": 90, "green": 10}
    assert world.snapshot() == before


# -- the emergency button ----------------------------------------------------------------------------
def test_manual_rollback_of_a_deployment_in_progress(world, new_run, stages):
    stages.release(new_run("run1"), world.spec(), upto=(10, 50))
    outcome = _press(world)
    assert outcome.before.split == {"blue": 50, "green": 50}
    assert outcome.state.split == {"blue": 100, "green": 0} == world.split()
    state = world.state()
    assert (state.owner, state.phase, state.live) == ("bluegreen_deploy/run1", Phase.ABORTED, "blue")
    assert state.reason == "manual rollback by oncall"


def test_a_run_rolled_back_by_hand_never_shifts_again(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    _press(world)
    before = world.snapshot()
    with pytest.raises(AirflowFailException, match=r"was rolled back by hand at .*Start a new deployment run"):
        run.execute(stages.shift(50))
    assert world.snapshot() == before
    assert world.split() == {"blue": 100, "green": 0}

    run2 = new_run("run2")
    stages.release(run2, world.spec(), upto=(10,))  # a new run deploys as usual
    assert world.split() == {"blue": 90, "green": 10}
    assert (world.state().owner, world.state().phase) == (run2.owner, Phase.SHIFTING)


def test_manual_rollback_after_promotion_returns_to_the_retained_slot(world, new_run, stages):
    stages.release(new_run("run1"), world.spec(), upto=STEPS)
    outcome = _press(world)
    assert outcome.before.split == {"blue": 0, "green": 100}
    assert world.split() == {"blue": 100, "green": 0}
    state = world.state()
    assert (state.phase, state.live, state.candidate, state.retained) == (Phase.ABORTED, "blue", "green", None)
    assert "emergency rollback to the retained release" in state.reason

    before = world.snapshot()
    with pytest.raises(NothingToDo, match=r"nothing to roll back: already rolled back at .*blue is live"):
        _press(world)
    assert world.snapshot() == before


def test_manual_rollback_after_retention_ended(world, new_run, stages, clock):
    stages.release(new_run("run1"), world.spec(retention_seconds=60), upto=STEPS)
    clock(61)
    before = world.snapshot()
    with pytest.raises(NothingToDo, match="the retention of blue ended at"):
        _press(world)
    assert world.snapshot() == before


def test_manual_rollback_after_a_promotion_that_retained_nothing(world, new_run, stages):
    stages.release(new_run("run1"), world.spec(retention_seconds=0), upto=STEPS)
    before = world.snapshot()
    with pytest.raises(NothingToDo, match="the last promotion retained nothing; green is live"):
        _press(world)
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
    assert world.state().phase == Phase.ABORTED
    result = button.complete(op, {"status": "success"}, **deferred.value.kwargs)
    assert result["phase"] == "aborted" and result["live"] == "blue" and result["insync"] is True
    assert result["split_after"] == {"blue": 100, "green": 0}

    before = world.snapshot()
    with pytest.raises(AirflowFailException, match="nothing to roll back: already rolled back"):
        button.execute(op)  # pressed again: nothing changes, and it says so
    assert world.snapshot() == before


def test_manual_rollback_operator_after_promotion(world, new_run, stages):
    from bluegreen_provider.operators.rollback import ManualRollbackOperator

    stages.release(new_run("run1"), world.spec(), upto=STEPS)
    op = ManualRollbackOperator(task_id="rollback", spec=json.dumps(world.spec()))
    result = new_run("manual__1", dag_id="bluegreen_rollback").execute(op)
    assert result["phase"] == "aborted" and result["live"] == "blue"
    assert result["split_before"] == {"blue": 0, "green": 100}
    assert world.split() == {"blue": 100, "green": 0}
    assert world.state().retained is None

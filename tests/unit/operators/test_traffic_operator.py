from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.operators import plan as plan_module
from bluegreen_provider.operators.traffic import MARKED_SUCCESS, ShiftWeightOperator
from bluegreen_provider.state import Phase
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger


def test_shift_round_trip_reads_back_each_split(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec())
    result = run.execute(stages.shift(10))
    assert world.split() == {"blue": 90, "green": 10}
    assert result["split"] == {"blue": 90, "green": 10}
    assert result["previous_split"] == {"blue": 100, "green": 0}
    assert run.xcom("shift_10", "previous_split") == {"blue": 100, "green": 0}

    again = run.execute(stages.shift(10))  # a cleared task re-running: nothing to change
    assert again["split"] == {"blue": 90, "green": 10}
    assert world.split() == {"blue": 90, "green": 10}

    assert world.state().split == world.split() and world.state().phase == Phase.SHIFTING

    run.execute(stages.shift(50))
    assert world.split() == {"blue": 50, "green": 50}
    state = world.state()
    assert (state.owner, state.phase, state.split) == (run.owner, Phase.SHIFTING, {"blue": 50, "green": 50})

    # Lowering the candidate is the rollback's job, not a shift's: a shift never goes backwards.
    before = world.snapshot()
    with pytest.raises(AirflowFailException, match=r"not shifting green to 0 %: traffic reads blue 50 / green 50"):
        run.execute(stages.shift(0, task_id="shift_back"))
    assert world.snapshot() == before
    back = run.execute(stages.rollback())
    assert world.split() == {"blue": 100, "green": 0}
    assert back["split_before"] == {"blue": 50, "green": 50}
    state = world.state()
    assert (state.owner, state.phase, state.split) == (run.owner, Phase.ROLLED_BACK, {"blue": 100, "green": 0})


def test_shift_defers_while_pending_and_completes_from_the_trigger(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec())
    op = stages.shift(10, poll_interval=0.01)
    with monkeypatch.context() as m:
        m.setattr(Route53Hook, "get_change_status", lambda self, change_id: "PENDING")
        with pytest.raises(TaskDeferred) as deferred:
            run.execute(op)
    trigger = deferred.value.trigger
    assert isinstance(trigger, ErrorRateTrigger) and trigger.mode == "propagation"
    assert deferred.value.method_name == "execute_complete"
    assert trigger.timeout_seconds == 30
    assert deferred.value.timeout >= timedelta(seconds=30)
    assert world.split() == {"blue": 90, "green": 10}  # submitted; only propagation is awaited

    async def first_event():
        async for event in trigger.run():
            return event.payload

    event = asyncio.run(first_event())  # moto reports the change INSYNC
    assert event == {"status": "insync", "insync_at": event["insync_at"], "change_id": trigger.change_id}
    result = run.complete(op, event, **deferred.value.kwargs)
    assert result["split"] == {"blue": 90, "green": 10}
    assert result["previous_split"] == {"blue": 100, "green": 0}
    assert (result["change_id"], result["insync_at"]) == (trigger.change_id, event["insync_at"])


def test_shift_fails_when_route53_never_syncs(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec())
    op = stages.shift(10)
    monkeypatch.setattr(Route53Hook, "get_change_status", lambda self, change_id: "PENDING")
    with pytest.raises(TaskDeferred) as deferred:
        run.execute(op)
    event = {"status": "timeout", "change_id": "C1", "message": "Route53 change C1 still PENDING after 30s"}
    with pytest.raises(AirflowFailException, match=r"still PENDING after 30s. Traffic now reads blue 90 / green 10"):
        run.complete(op, event, **deferred.value.kwargs)


def test_shift_verifies_the_read_back(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec())
    op = stages.shift(10)
    monkeypatch.setattr(Route53Hook, "get_change_status", lambda self, change_id: "PENDING")
    with pytest.raises(TaskDeferred) as deferred:
        run.execute(op)
    world.set_split(100, 0)  # someone moved it back by hand while we waited
    with pytest.raises(AirflowFailException, match=r"reads blue 100 / green 0 .* expected blue 90 / green 10"):
        run.complete(
            op,
            {"status": "insync", "insync_at": datetime.now(UTC).isoformat(), "change_id": "C1"},
            **deferred.value.kwargs,
        )


def test_shift_refuses_into_a_firing_alarm(world, new_run, stages):
    world.alarm("lego-api-5xx", "OK")
    world.alarm("lego-api-db", "ALARM")  # already firing at plan time: that episode is excused
    run = new_run("run1")
    stages.release(run, world.spec(alarms=["lego-api-5xx", "lego-api-db"]))
    run.execute(stages.shift(10))
    assert world.split() == {"blue": 90, "green": 10}

    world.alarm("lego-api-5xx", "ALARM")
    with pytest.raises(
        AirflowFailException,
        match=r"^not shifting: alarm lego-api-5xx in ALARM: test set ALARM\. shift_50 would raise green to 50%; "
        r"traffic stays at blue 90 / green 10\.$",
    ):
        run.execute(stages.shift(50))
    assert world.split() == {"blue": 90, "green": 10}
    run.execute(stages.rollback())  # lowering the candidate is always allowed
    assert world.split() == {"blue": 100, "green": 0}
    assert world.state().phase == Phase.ROLLED_BACK


def test_rejected_approval_skips_the_promotion(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    run.put("approval", {"decision": "reject", "by": "alice"})
    with pytest.raises(AirflowSkipException, match=r"approval rejected.*stays at blue 50 / green 50"):
        run.execute(stages.shift(100, approval_task_id="approval"))
    assert world.split() == {"blue": 50, "green": 50}


def test_approval_marked_success_in_the_ui_is_recorded_as_such(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    result = run.execute(stages.shift(100, approval_task_id="approval"))
    assert result["approval"] == MARKED_SUCCESS
    assert world.split() == {"blue": 0, "green": 100}


def test_approval_decision_is_recorded(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    run.put("approval", {"decision": "approve", "by": "alice"})
    result = run.execute(stages.shift(100, approval_task_id="approval"))
    assert result["approval"] == {"decision": "approve", "by": "alice"}


def test_promotion_retains_the_old_slot_and_ends_the_deployment(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=3600), upto=(10, 50))
    start = datetime.now(UTC)
    result = run.execute(stages.shift(100))
    assert world.split() == {"blue": 0, "green": 100}
    state = world.state()
    assert (state.owner, state.phase, state.live, state.candidate) == (run.owner, Phase.RETAINED, "green", "blue")
    assert not state.active and state.split == world.split()
    assert state.retained.slot == "blue" and state.retained.owner == "bluegreen_deploy/run1"
    assert state.retained.versions == {fn: "1" for fn in world.functions}
    assert state.retained.until == result["retain_until"]
    until = datetime.fromisoformat(result["retain_until"])
    assert start + timedelta(seconds=3599) <= until <= datetime.now(UTC) + timedelta(seconds=3601)

    before = world.snapshot()
    again = run.execute(stages.shift(100))  # re-run: the window is not extended
    assert again["retain_until"] == result["retain_until"]
    assert world.snapshot() == before


def test_shift_refuses_when_another_run_owns_the_service(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec())
    monkeypatch.setattr(plan_module, "dag_run_is_active", lambda owner: False)  # run1 looks abandoned
    new_run("run2").execute(stages.plan(world.spec()))  # run2 takes the clean service over
    assert world.state().owner == "bluegreen_deploy/run2"
    before = world.snapshot()
    with pytest.raises(
        AirflowFailException,
        match=r"run bluegreen_deploy/run2 \(planned, .*\) owns lego-api now; this run \(bluegreen_deploy/run1\) "
        r"must not change it",
    ):
        run.execute(stages.shift(10))
    assert world.snapshot() == before


def test_stale_run_cannot_shift_after_a_newer_promotion(world, new_run, stages):
    old = new_run("run1")
    stages.release(old, world.spec(), upto=(10,))
    old.execute(stages.rollback())  # run1 rolled back...
    stages.release(new_run("run2"), world.spec("bad"), upto=(10, 50, 100))  # ...then run2 promoted green
    assert (world.state().owner, world.state().phase) == ("bluegreen_deploy/run2", Phase.RETAINED)
    before = world.snapshot()
    with pytest.raises(
        AirflowFailException, match=r"run bluegreen_deploy/run2 \(retained, .*\) owns lego-api now; this run"
    ):
        old.execute(stages.shift(100))
    assert world.snapshot() == before


@pytest.mark.parametrize("pct", [-1, 101, True, 10.5, "50"])
def test_candidate_pct_is_validated_when_the_dag_is_parsed(pct):
    with pytest.raises(ValueError, match="candidate_pct"):
        ShiftWeightOperator(task_id="shift_x", candidate_pct=pct)
    with pytest.raises(ValueError, match="poll_interval"):
        ShiftWeightOperator(task_id="shift_x", candidate_pct=10, poll_interval=0)

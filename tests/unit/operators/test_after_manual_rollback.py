"""After the emergency button (``bluegreen rollback``) a run's stages stop and say so, from the state record.

Before, a shift overtaken by the button while Route53 propagated it blamed "someone else" for the
split; a soak whose candidate the person had drained failed with "not enough data" (or passed, and
the run went on to ask a person to promote an aborted deployment). Each now names the manual
rollback, and changes nothing.
"""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.rollback import emergency_rollback
from bluegreen_provider.sensors.approval import ApprovalSensor
from bluegreen_provider.sensors.error_rate import ErrorRateSensor
from bluegreen_provider.spec import DeploymentSpec


def press(world) -> None:
    emergency_rollback(Route53Hook(), LambdaAliasHook(), DeploymentSpec.from_dict(world.spec()), by="oncall")


def test_a_shift_overtaken_by_the_emergency_rollback_names_it(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec())
    shift = stages.shift(10)
    with monkeypatch.context() as m:
        m.setattr(Route53Hook, "get_change_status", lambda self, change_id: "PENDING")
        with pytest.raises(TaskDeferred) as deferred:
            run.execute(shift)
    assert world.split() == {"blue": 90, "green": 10}
    press(world)
    before = world.snapshot()

    event = {"status": "insync", "insync_at": "2026-01-01T00:00:00+00:00", "change_id": "C1"}
    with pytest.raises(AirflowFailException) as failed:
        run.complete(shift, event, **deferred.value.kwargs)

    message = str(failed.value)
    assert "shift_10: Route53 reads blue 100 / green 0 after the change, expected blue 90 / green 10" in message
    assert "this deployment was rolled back by hand at" in message and "manual rollback by oncall" in message
    assert "someone else" not in message
    assert world.snapshot() == before


def test_a_shift_whose_split_changed_outside_bluegreen_still_says_someone_else_did(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec())
    shift = stages.shift(10)
    run.execute(shift)
    world.set_split(blue=70, green=30)  # by hand, the state record left as it was
    with pytest.raises(AirflowFailException, match="someone else changed the record meanwhile"):
        run.complete(shift, {"status": "insync", "insync_at": "2026-01-01T00:00:00+00:00", "change_id": "C1"})


CLEAN = {"status": "clean", "summary": {"requests": 40, "errors": 0, "rate_pct": 0.0}}
NO_DATA = {"status": "no_data", "message": "not enough data: 3 requests < min 20", "summary": {"requests": 3}}


@pytest.mark.parametrize("event", [CLEAN, NO_DATA], ids=["clean", "no_data"])
def test_a_soak_whose_run_was_rolled_back_by_hand_stops_and_says_so(world, new_run, stages, event):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    press(world)
    before = world.snapshot()
    soak = ErrorRateSensor(task_id="soak_10", stage_pct=10)

    with pytest.raises(AirflowFailException, match=r"soak at 10 % stopped: this deployment was rolled back by hand"):
        run.complete(soak, event)

    verdict = run.xcom("soak_10", key="verdict")
    assert verdict["status"] == "stopped" and "manual rollback by oncall" in verdict["message"], verdict
    assert world.snapshot() == before


def test_a_soak_of_a_run_nobody_rolled_back_judges_as_before(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    assert run.complete(ErrorRateSensor(task_id="soak_10", stage_pct=10), CLEAN)["outcome"] == "clean"
    with pytest.raises(AirflowFailException, match="soak at 10 % failed: not enough data"):
        run.complete(ErrorRateSensor(task_id="soak_10", stage_pct=10), NO_DATA)


def test_an_aborted_run_does_not_ask_a_person_to_promote_it(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    press(world)
    before = world.snapshot()
    with pytest.raises(AirflowFailException, match=r"not asking to promote lego-api green: this deployment was rolled"):
        run.execute(ApprovalSensor(task_id="approval"))
    assert run.xcom("approval", key="request") is None, "no request was made"
    assert world.snapshot() == before

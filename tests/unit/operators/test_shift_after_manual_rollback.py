"""A shift whose change was overtaken by the emergency button while Route53 propagated it says so.

Before, the shift's read-back found 100 % on live and blamed "someone else" for changing the record,
sending the on-call engineer to hunt for a stranger when the state record names the person who
pressed ``bluegreen rollback``.
"""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.rollback import emergency_rollback
from bluegreen_provider.spec import DeploymentSpec


def test_a_shift_overtaken_by_the_emergency_rollback_names_it(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec())
    shift = stages.shift(10)
    with monkeypatch.context() as m:
        m.setattr(Route53Hook, "get_change_status", lambda self, change_id: "PENDING")
        with pytest.raises(TaskDeferred) as deferred:
            run.execute(shift)
    assert world.split() == {"blue": 90, "green": 10}
    emergency_rollback(Route53Hook(), LambdaAliasHook(), DeploymentSpec.from_dict(world.spec()), by="oncall")
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

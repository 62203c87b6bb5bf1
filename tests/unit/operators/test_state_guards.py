"""The production problems the deployment state record exists for, each read back from moto.

Every test here drives the real stages and transitions; where a race is needed, the other actor is
made to land at the exact point (between a guard's read and its change batch) by wrapping the hook,
never by sleeping.
"""

from __future__ import annotations

import logging
import threading

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import ChangeConflict, Route53Hook
from bluegreen_provider.operators import plan as plan_module
from bluegreen_provider.rollback import emergency_rollback, rollback_on_failure
from bluegreen_provider.sandbox import route53_rules
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import NothingToDo, Phase, hold

STEPS = (10, 50, 100)


@pytest.fixture(autouse=True)
def no_task_states(monkeypatch):
    """Outside a task process Airflow cannot be asked which tasks failed: answer 'none'."""

    def get_task_states(dag_id, map_index=None, task_ids=None, task_group_id=None, logical_dates=None, run_ids=None):
        return {run_ids[0]: {}}

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))


def press(world, by: str = "oncall"):
    """The emergency button (CLI, rollback DAG, UI)."""
    spec = DeploymentSpec.from_dict(world.spec())
    return emergency_rollback(Route53Hook(), LambdaAliasHook(), spec, by=by)


def before_batch(monkeypatch, when, action):
    """Run ``action()`` once, just before the first change batch whose comment contains ``when`` is sent."""
    original = Route53Hook.change_batch
    fired = []

    def change_batch(self, zone_id, changes, *, comment):
        if when in comment and not fired:
            fired.append(comment)
            action()
        return original(self, zone_id, changes, comment=comment)

    monkeypatch.setattr(Route53Hook, "change_batch", change_batch)
    return fired


# -- 1. the emergency button never sends traffic to code it did not retain ----------------------------
def test_button_refuses_after_a_newer_run_reused_the_retained_slot(world, new_run, stages):
    stages.release(new_run("run1"), world.spec("v2", retention_seconds=3600), upto=STEPS)
    assert world.state().retained.slot == "blue"  # run1 promoted green, blue retained
    run2 = new_run("run2")
    plan = stages.release(run2, world.spec("bad"), upto=(10,))  # run2 releases bad code into blue
    assert (plan["live"], plan["candidate"]) == ("green", "blue")
    assert plan["replaces_retained"]["owner"] == "bluegreen_deploy/run1"
    bad = world.aliases("blue")
    assert all(world.versions(fn)[v] == world.sha["bad"] for fn, v in bad.items())
    run2.execute(stages.rollback())  # rolled back at 10 %
    assert world.split() == {"blue": 0, "green": 100}

    before = world.records()
    with pytest.raises(NothingToDo, match=r"the last deployment \(bluegreen_deploy/run2\) was already rolled back"):
        press(world)
    assert world.records() == before
    assert world.split() == {"blue": 0, "green": 100}  # blue serves run2's bad code: it gets nothing
    assert world.aliases("blue") == bad
    assert (world.state().owner, world.state().phase, world.state().retained) == (run2.owner, Phase.ROLLED_BACK, None)


def test_a_held_run_rolled_back_by_hand_then_pressed_again_changes_nothing(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    hold(world.service(), run.owner, "held: rejected by alice")
    assert world.state().phase == Phase.HELD
    first = press(world)
    assert first.state.phase == Phase.ABORTED and world.split() == {"blue": 100, "green": 0}

    before, batches = world.records(), world.changes()
    with pytest.raises(NothingToDo, match=r"nothing to roll back: already rolled back at .*manual rollback by oncall"):
        press(world)
    assert world.records() == before  # byte for byte
    assert world.changes() == batches  # and no batch was sent at all


# -- 2. a rollback racing a shift ----------------------------------------------------------------------
def test_a_rollback_landing_inside_a_shift_wins(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    # The button is pressed after shift_50 read and checked the state, before its batch reaches Route53.
    fired = before_batch(monkeypatch, "shift to 50 %", lambda: press(world))
    with pytest.raises(AirflowFailException, match=r"shift_50: this deployment .* was rolled back by hand"):
        run.execute(stages.shift(50))
    assert fired  # the race really happened
    assert world.split() == {"blue": 100, "green": 0}
    state = world.state()
    assert (state.phase, state.split, state.owner) == (Phase.ABORTED, {"blue": 100, "green": 0}, run.owner)


def test_the_run_own_rollback_landing_inside_a_shift_wins(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    soak = stages.shift(10, task_id="soak_10")
    callback = lambda: rollback_on_failure(run.context(soak, exception=RuntimeError("error rate 9%")))  # noqa: E731
    fired = before_batch(monkeypatch, "shift to 50 %", callback)
    with pytest.raises(AirflowFailException, match=r"shift_50: not shifting: this run was rolled back"):
        run.execute(stages.shift(50))
    assert fired
    assert world.split() == {"blue": 100, "green": 0}
    assert world.state().phase == Phase.ROLLED_BACK


def test_a_shift_landing_before_the_rollback_is_undone_by_it(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    assert world.split() == {"blue": 50, "green": 50}
    press(world)
    assert world.split() == {"blue": 100, "green": 0}
    assert world.state().phase == Phase.ABORTED


# -- 3. stale runs --------------------------------------------------------------------------------------
def test_clearing_shift_10_after_promotion_and_retirement_is_refused(world, new_run, stages, clock):
    run = new_run("run1")
    stages.release(run, world.spec(retention_seconds=60), upto=STEPS)
    clock(61)
    assert run.execute(stages.teardown())["action"] == "retired"
    before = world.snapshot()
    with pytest.raises(AirflowFailException, match=r"already promoted green \(retired\); it will not move traffic"):
        run.execute(stages.shift(10))
    assert world.snapshot() == before
    assert world.split() == {"blue": 0, "green": 100}


def test_an_older_run_retrying_a_shift_after_a_newer_run_took_the_slot_is_refused(world, new_run, stages):
    old = new_run("run1")
    stages.release(old, world.spec("v2"), upto=(10,))
    old.execute(stages.rollback())
    new = new_run("run2")
    stages.release(new, world.spec("bad"))  # planned and deployed into green, the same slot
    before = world.snapshot()
    with pytest.raises(
        AirflowFailException, match=r"run bluegreen_deploy/run2 \(planned, .*\) owns lego-api now; this run"
    ):
        old.execute(stages.shift(10))
    assert world.snapshot() == before
    assert world.split() == {"blue": 100, "green": 0}


# -- 4. two plans at once -------------------------------------------------------------------------------
def test_interleaved_plans_leave_exactly_one_owner(world, new_run, stages, monkeypatch):
    run1, run2 = new_run("run1"), new_run("run2")
    # run2's whole plan lands after run1 read the state and before run1's batch is sent.
    fired = before_batch(monkeypatch, "plan (bluegreen_deploy/run1)", lambda: run2.execute(stages.plan(world.spec())))
    with pytest.raises(AirflowFailException, match=r"another deployment owns this service: run bluegreen_deploy/run2"):
        run1.execute(stages.plan(world.spec()))
    assert fired
    state = world.state()
    assert (state.owner, state.phase, state.generation) == (run2.owner, Phase.PLANNED, 1)


def test_concurrent_plans_leave_exactly_one_owner(world, new_run, stages, monkeypatch):
    runs = [new_run("run1"), new_run("run2")]
    both_decided = threading.Barrier(2, timeout=60)
    waited = threading.local()
    original = Route53Hook.change_batch

    def change_batch(self, zone_id, changes, *, comment):
        if not getattr(waited, "done", False):
            waited.done = True
            both_decided.wait()  # both plans have read and decided before either batch is sent
        return original(self, zone_id, changes, comment=comment)

    monkeypatch.setattr(Route53Hook, "change_batch", change_batch)
    outcomes: dict[str, BaseException | None] = {}

    def plan(run):
        try:
            run.execute(stages.plan(world.spec()))
            outcomes[run.owner] = None
        except BaseException as err:
            outcomes[run.owner] = err

    threads = [threading.Thread(target=plan, args=(run,)) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    winners = [owner for owner, err in outcomes.items() if err is None]
    assert len(outcomes) == 2 and len(winners) == 1, outcomes
    (loser,) = [err for err in outcomes.values() if err is not None]
    assert isinstance(loser, AirflowFailException)
    assert f"another deployment owns this service: run {winners[0]} " in str(loser)
    state = world.state()
    assert (state.owner, state.phase, state.generation) == (winners[0], Phase.PLANNED, 1)


# -- 5. owner strings are kept exactly ------------------------------------------------------------------
def test_a_long_odd_run_id_is_its_own_owner_and_a_prefix_equal_one_is_not(world, new_run, stages):
    run_id = ('manual__2026-12-01T00:00:00~"quoted"\\back\\slash' * 10)[:300]
    assert len(run_id) == 300 and {"~", '"', "\\"} <= set(run_id)
    run = new_run(run_id)
    stages.release(run, world.spec(), upto=(10,))
    state = world.state()
    assert state.owner == f"bluegreen_deploy/{run_id}" and state.phase == Phase.SHIFTING
    assert world.split() == {"blue": 90, "green": 10}

    for similar in (run_id[:-1], run_id + "~", run_id[:238]):
        other = new_run(similar)
        before = world.snapshot()
        with pytest.raises(AirflowFailException, match="another deployment owns this service"):
            other.execute(stages.plan(world.spec()))
        other.put("plan", run.xcom("plan"))  # even with the rightful owner's plan it is not the owner
        with pytest.raises(AirflowFailException, match="must not change it"):
            other.execute(stages.shift(50))
        nothing = other.execute(stages.rollback())
        assert nothing["action"] == "nothing" and "owns lego-api now" in nothing["reason"]
        assert world.snapshot() == before

    result = run.execute(stages.rollback())
    assert result["action"] == "rolled_back" and result["owner"] == f"bluegreen_deploy/{run_id}"
    assert world.split() == {"blue": 100, "green": 0}
    assert world.state().owner == f"bluegreen_deploy/{run_id}" and world.state().phase == Phase.ROLLED_BACK


# -- 7. the failure callback sends the rollback and returns -------------------------------------------
def test_failure_callback_does_not_wait_for_insync(world, new_run, stages, monkeypatch, caplog):
    from moto.route53.responses import Route53

    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    get_change_calls = []

    def get_change(self):
        get_change_calls.append(self)
        raise AssertionError("the failure callback must not poll GetChange")

    monkeypatch.setattr(Route53, "get_change", get_change)
    monkeypatch.setattr(Route53Hook, "wait_for_change", lambda *a, **k: pytest.fail("waited for INSYNC"))
    route53_rules.configure(propagation_seconds=300)
    try:
        with caplog.at_level(logging.ERROR, logger="bluegreen_provider.rollback"):
            rollback_on_failure(run.context(stages.shift(10, task_id="soak_10"), exception=RuntimeError("9%")))
        latest = route53_rules.CHANGES.zone(world.zone_id)[-1]
        assert latest.status(route53_rules.SETTINGS.clock()) == "PENDING"  # still propagating
    finally:
        route53_rules.configure(propagation_seconds=0)
    assert get_change_calls == []
    assert "AUTOMATIC ROLLBACK after soak_10 failed" in caplog.text
    assert world.split() == {"blue": 100, "green": 0}
    assert world.state().phase == Phase.ROLLED_BACK


# -- 8. the rollback task succeeds when it restores, and fails only when it cannot -------------------
def test_rollback_task_succeeds_and_reports_the_restored_split(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    result = run.execute(stages.rollback())
    assert result["action"] == "rolled_back"
    assert (result["split_before"], result["split_now"]) == ({"blue": 50, "green": 50}, {"blue": 100, "green": 0})
    assert world.split() == {"blue": 100, "green": 0} and world.state().phase == Phase.ROLLED_BACK


def test_rollback_task_with_nothing_to_restore_succeeds_and_says_so(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=STEPS)  # a successful run: the teardown finds nothing
    before = world.snapshot()
    result = run.execute(stages.rollback())
    assert result["action"] == "nothing" and "automatic rollback does not undo a promotion" in result["reason"]
    assert result["split_now"] == {"blue": 0, "green": 100}
    assert world.snapshot() == before


def test_rollback_task_fails_when_route53_refuses_every_attempt(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    attempts = []

    def refuse(self, zone_id, changes, *, comment):
        attempts.append(comment)
        raise ChangeConflict("Tried to delete resource record set but the values provided do not match")

    monkeypatch.setattr(Route53Hook, "change_batch", refuse)
    with pytest.raises(AirflowFailException, match=r"ROLLBACK NOT DONE: rollback: Route53 kept rejecting the change"):
        run.execute(stages.rollback())
    assert len(attempts) > 1
    assert world.split() == {"blue": 90, "green": 10}


# -- the checks each stage must keep --------------------------------------------------------------------
def test_deploy_refuses_when_another_run_owns_the_service(world, new_run, stages, monkeypatch):
    run1 = new_run("run1")
    run1.execute(stages.plan(world.spec("v2")))
    monkeypatch.setattr(plan_module, "dag_run_is_active", lambda owner: False)
    new_run("run2").execute(stages.plan(world.spec("v1")))  # run2 took the service over
    before = world.snapshot()
    with pytest.raises(
        AirflowFailException,
        match=r"deploy_green refused before any change: run bluegreen_deploy/run2 .* owns lego-api now",
    ):
        run1.execute(stages.deploy())
    assert world.snapshot() == before  # no version published, no alias moved
    assert world.aliases("green") == {fn: "1" for fn in world.functions}


def test_rollback_task_fails_when_the_split_read_back_is_not_the_declared_one(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    op = stages.rollback()
    with monkeypatch.context() as m:
        m.setattr(Route53Hook, "get_change_status", lambda self, change_id: "PENDING")
        with pytest.raises(TaskDeferred) as deferred:
            run.execute(op)
    world.set_split(90, 10)  # someone puts traffic back on green by hand while the rollback propagates
    with pytest.raises(
        AirflowFailException,
        match=r"ROLLBACK NOT CONFIRMED: Route53 reads blue 90 / green 10 but the state declares blue 100 / green 0",
    ):
        run.complete(op, {"status": "success"}, **deferred.value.kwargs)


def test_teardown_does_not_wait_for_a_retention_another_run_owns(world, new_run, stages):
    old = new_run("run1")
    stages.release(old, world.spec(retention_seconds=0), upto=STEPS)
    stages.release(new_run("run2"), world.spec("v1", retention_seconds=3600), upto=STEPS)
    assert (world.state().owner, world.state().phase) == ("bluegreen_deploy/run2", Phase.RETAINED)
    before = world.snapshot()
    result = old.execute(stages.teardown())  # returns at once: no deferral to run2's deadline
    assert result["action"] == "nothing" and "bluegreen_deploy/run2" in result["reason"]
    assert world.snapshot() == before


def test_a_deferred_teardown_retires_nothing_once_another_run_owns_the_service(world, new_run, stages, clock):
    for fn in world.functions:  # version 2 exists and no alias uses it: a prune would delete it
        world.lam.update_function_code(FunctionName=fn, ZipFile=world.zips["bad"].read_bytes())
        world.lam.publish_version(FunctionName=fn)
    check = world.route53.create_health_check(
        CallerReference="lego-api-green",
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": "green.api.lego-mocs.com",
            "Port": 443,
            "ResourcePath": "/health",
        },
    )["HealthCheck"]["Id"]
    Route53Hook().set_health_check(world.zone_id, "api.lego-mocs.com", "A", "green", check, comment="test")
    old = new_run("run1")
    stages.release(old, world.spec(retention_seconds=3600, keep_versions=0), upto=STEPS)
    op = stages.teardown()
    with pytest.raises(TaskDeferred) as deferred:
        old.execute(op)  # waits for run1's deadline on the triggerer...
    # ...meanwhile run2 deploys into blue, promotes it, and retains green with its health check
    stages.release(new_run("run2"), world.spec("v1", retention_seconds=3600, keep_versions=0), upto=STEPS)
    clock(3601)  # both deadlines have passed when run1's trigger fires
    before = world.snapshot()
    result = old.complete(op, {"status": "success"}, **(deferred.value.kwargs or {}))
    assert result["action"] == "nothing" and "bluegreen_deploy/run2" in result["reason"]
    assert world.snapshot() == before  # nothing retired, no health check deleted, no version pruned
    assert [c["Id"] for c in world.route53.list_health_checks()["HealthChecks"]] == [check]
    assert (world.state().owner, world.state().phase) == ("bluegreen_deploy/run2", Phase.RETAINED)

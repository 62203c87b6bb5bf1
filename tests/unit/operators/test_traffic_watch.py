"""The candidate watched by the traffic stages: while Route53 propagates a shift, at the last look before
promotion, and with the alarms the plan excused. State is read back from moto."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bluegreen_provider.hooks.cloudwatch import AlarmState, CloudWatchMetricsHook
from bluegreen_provider.operators.plan import PlanDeploymentOperator
from bluegreen_provider.plan import Plan
from bluegreen_provider.sandbox import route53_rules
from bluegreen_provider.soak import ExcusedAlarm, Soak, SoakRules, SoakWatch, slot_query
from bluegreen_provider.state import Phase
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

from .conftest import FUNCTIONS

FAST = {"metrics_period_seconds": 1, "metrics_lag_seconds": 0, "poll_interval_seconds": 1}


@pytest.fixture
def propagation() -> Iterator[Any]:
    """``propagation(seconds)``: Route53 changes submitted from now on stay PENDING that long (restored after)."""
    before = route53_rules.SETTINGS.propagation_seconds
    yield lambda seconds: route53_rules.configure(propagation_seconds=seconds)
    route53_rules.configure(propagation_seconds=before)


def put_traffic(world: Any, colour: str, requests: int, errors: int, seconds_ago: float = 0) -> None:
    """Invocations and errors of one slot's aliases at 1 s resolution, the first function taking every error."""
    stamp = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    shares = [(requests - requests // 2, errors), (requests // 2, 0)]
    data = []
    for fn, (calls, failed) in zip(FUNCTIONS, shares, strict=True):
        dims = [{"Name": "FunctionName", "Value": fn}, {"Name": "Resource", "Value": f"{fn}:production-{colour}"}]
        for name, value in (("Invocations", calls), ("Errors", failed)):
            data.append(
                {"MetricName": name, "Dimensions": dims, "Timestamp": stamp, "Value": value, "StorageResolution": 1}
            )
    world.cw.put_metric_data(Namespace="AWS/Lambda", MetricData=data)


def change_status(world: Any, change_id: str) -> str:
    return world.route53.get_change(Id=change_id)["ChangeInfo"]["Status"]


def first_event(trigger: ErrorRateTrigger, timeout: float = 15) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    return asyncio.run(asyncio.wait_for(go(), timeout))


def defer_shift(run: Any, stages: Any, pct: int = 10) -> tuple[Any, TaskDeferred]:
    op = stages.shift(pct, poll_interval=0.2)
    with pytest.raises(TaskDeferred) as deferred:
        run.execute(op)
    return op, deferred.value


# -- while Route53 propagates the shift --------------------------------------------------------------


def test_shift_defers_to_the_propagation_watch_while_the_change_is_pending(world, new_run, stages, propagation):
    run = new_run("run1")
    stages.release(run, world.spec(**FAST))
    propagation(60)
    before = datetime.now(UTC)
    _, deferred = defer_shift(run, stages)
    trigger = deferred.trigger
    assert isinstance(trigger, ErrorRateTrigger) and deferred.method_name == "execute_complete"
    assert (trigger.mode, trigger.timeout_seconds) == ("propagation", 30)
    assert deferred.timeout >= timedelta(seconds=30)
    assert change_status(world, trigger.change_id) == "PENDING"
    # The new weights are in place and the state says so; only the name servers lag behind.
    assert world.split() == {"blue": 90, "green": 10}
    assert (world.state().phase, world.state().split) == (Phase.SHIFTING, {"blue": 90, "green": 10})
    soak = Soak.from_dict(trigger.soak)
    times = deferred.kwargs["times"]
    assert times["change_id"] == trigger.change_id
    assert before <= soak.watch_from == datetime.fromisoformat(times["submitted_at"]) <= datetime.now(UTC)
    assert soak.clock_start is None  # the soak's clock starts at INSYNC
    assert (soak.stage_pct, soak.candidate.slot, soak.baseline.slot) == (10, "green", "blue")
    assert soak.candidate.query.dimension_sets[0]["Resource"] == f"{FUNCTIONS[0]}:production-green"
    assert soak.rules.poll_interval == 0.2  # the shift's own rhythm, not the soak's


def test_breach_while_route53_propagates_fails_the_shift_with_a_verdict(world, new_run, stages, propagation):
    run = new_run("run1")
    stages.release(run, world.spec(**FAST))
    propagation(60)
    op, deferred = defer_shift(run, stages)
    put_traffic(world, "green", 500, 156)
    put_traffic(world, "blue", 4500, 45)
    event = first_event(deferred.trigger)
    assert (event["status"], event["rule"], event["propagating"]) == ("breach", "error_rate", True)
    assert change_status(world, deferred.trigger.change_id) == "PENDING"  # the breach came first

    with pytest.raises(AirflowFailException) as failure:
        run.complete(op, event, **deferred.kwargs)
    message = str(failure.value)
    assert message.startswith(
        "shift_10: breach while Route53 propagated the change (error_rate): error rate 31.2 % > 5.0 % on green "
        "(156 errors / 500 requests, "
    )
    assert message.endswith("; blue 1.0 % (45/4500); traffic now blue 90 / green 10 (rollback restores blue)")
    verdict = run.xcom("shift_10", "verdict")
    assert (verdict["status"], verdict["rule"]) == ("breach", "error_rate")
    assert verdict["figures"]["live"] == {"slot": "blue", "requests": 4500, "errors": 45, "rate_pct": 1.0}
    assert run.xcom("shift_10") is None  # no result: the shift did not complete
    assert world.split() == {"blue": 90, "green": 10}  # the rollback task moves traffic, not the shift


def test_clean_propagation_records_when_the_change_was_submitted_and_insync(world, new_run, stages, propagation):
    run = new_run("run1")
    stages.release(run, world.spec(**FAST))
    propagation(1.0)
    op, deferred = defer_shift(run, stages)
    put_traffic(world, "green", 100, 0)
    event = first_event(deferred.trigger)
    assert event["status"] == "insync"
    assert change_status(world, deferred.trigger.change_id) == "INSYNC"
    result = run.complete(op, event, **deferred.kwargs)
    submitted, insync = (datetime.fromisoformat(result[k]) for k in ("submitted_at", "insync_at"))
    assert timedelta(seconds=1.0) <= insync - submitted < timedelta(seconds=3)
    assert result["change_id"] == deferred.trigger.change_id
    assert result["split"] == world.split() == {"blue": 90, "green": 10}
    assert run.xcom("shift_10")["insync_at"] == event["insync_at"]  # what the soak starts its clock from


def test_change_insync_at_once_returns_its_times_without_deferring(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(**FAST))
    result = run.execute(stages.shift(10))
    submitted, insync = (datetime.fromisoformat(result[k]) for k in ("submitted_at", "insync_at"))
    assert submitted <= insync <= datetime.now(UTC)
    assert change_status(world, result["change_id"]) == "INSYNC"


def test_watch_error_while_propagating_fails_the_shift(world, new_run, stages, propagation):
    run = new_run("run1")
    stages.release(run, world.spec(**FAST))
    propagation(60)
    op, deferred = defer_shift(run, stages)
    event = {"status": "error", "message": "3 polls in a row failed to read AWS"}
    with pytest.raises(
        AirflowFailException,
        match=r"could not watch the candidate while Route53 propagated the change: 3 polls in a row failed to read "
        r"AWS; traffic now blue 90 / green 10",
    ):
        run.complete(op, event, **deferred.kwargs)


# -- the last look before promotion ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("green", "blue", "rule", "why"),
    [
        ((200, 40), (2000, 20), "error_rate", r"error rate 20\.0 % > 5\.0 % on green \(40 errors / 200 requests, "),
        ((1000, 30), (9000, 45), "relative", r"green 3\.0 % \(30/1000\) vs blue 0\.5 % \(45/9000\): worse than 1\.5x"),
    ],
)
def test_promotion_refuses_when_the_candidates_last_window_is_bad(world, new_run, stages, green, blue, rule, why):
    run = new_run("run1")
    stages.release(run, world.spec(**FAST), upto=(10, 50))
    put_traffic(world, "green", *green)
    put_traffic(world, "blue", *blue)
    time.sleep(1.1)  # a datapoint counts once its second is over
    before = world.snapshot()
    with pytest.raises(AirflowFailException) as refused:
        run.execute(stages.shift(100))
    message = str(refused.value)
    assert message.startswith(f"not shifting ({rule}): ")
    assert re.search(why, message)
    assert message.endswith("shift_100 would raise green to 100%; traffic stays at blue 50 / green 50.")
    assert world.snapshot() == before
    assert (world.state().phase, world.state().split) == (Phase.SHIFTING, {"blue": 50, "green": 50})


def test_promotion_goes_ahead_when_the_last_window_is_clean(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(**FAST), upto=(10, 50))
    put_traffic(world, "green", 200, 1)
    put_traffic(world, "blue", 2000, 20)
    time.sleep(1.1)  # a datapoint counts once its second is over
    run.execute(stages.shift(100))
    assert world.split() == {"blue": 0, "green": 100}
    assert world.state().phase == Phase.RETAINED


def test_the_last_look_does_not_judge_what_green_served_before_the_last_shift(world, new_run, stages):
    # A release of this run that failed on green minutes ago, rolled back and replaced by a fix: its
    # errors are in the last window, but from before the deployment's last change (2 s before: the
    # stages below may all land within one second, the datapoints' resolution).
    put_traffic(world, "green", 200, 80, seconds_ago=2)
    put_traffic(world, "blue", 2000, 20, seconds_ago=2)
    run = new_run("run1")
    stages.release(run, world.spec(**FAST), upto=(10, 50))
    put_traffic(world, "green", 200, 1)
    put_traffic(world, "blue", 2000, 20)
    time.sleep(1.1)  # a datapoint counts once its second is over
    run.execute(stages.shift(100))
    assert world.split() == {"blue": 0, "green": 100}
    assert world.state().phase == Phase.RETAINED


# -- alarms the plan excused -------------------------------------------------------------------------


def alarm_since(world: Any, name: str) -> datetime:
    alarm = world.cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    return alarm.get("StateTransitionedTimestamp") or alarm["StateUpdatedTimestamp"]


def test_alarm_firing_before_the_deployment_began_is_excused_with_its_episode_start(world, new_run, stages):
    world.alarm("lego-api-db", "ALARM")
    world.alarm("lego-api-5xx", "OK")
    since = alarm_since(world, "lego-api-db")
    result = new_run("run1").execute(stages.plan(world.spec(alarms=["lego-api-db", "lego-api-5xx"], **FAST)))
    assert result["alarms_firing"] == [
        {"name": "lego-api-db", "state": "ALARM", "reason": "test set ALARM", "since": since.isoformat()}
    ]
    assert since < datetime.fromisoformat(world.state().started_at)
    assert (
        "ALARMS ALREADY FIRING before this deployment: lego-api-db. The analysis excuses exactly these episodes; "
        "a new episode of them, or any other alarm, still rolls back"
    ) in result["warnings"]
    assert not any("not excused" in w for w in result["warnings"])
    excused = SoakRules.from_plan(Plan.from_dict(result)).excused_alarms
    assert excused == (ExcusedAlarm("lego-api-db", since.isoformat()),)


def test_alarm_that_began_after_the_deployment_is_not_excused_on_a_replan(world, new_run, stages):
    world.alarm("lego-api-db", "ALARM")
    world.alarm("lego-api-5xx", "OK")
    spec = world.spec(alarms=["lego-api-db", "lego-api-5xx"], **FAST)
    run = new_run("run1")
    run.execute(stages.plan(spec))
    started_at = world.state().started_at
    world.cw.set_alarm_state(AlarmName="lego-api-5xx", StateValue="ALARM", StateReason="the candidate's errors")
    assert alarm_since(world, "lego-api-5xx") > datetime.fromisoformat(started_at)

    result = run.execute(stages.plan(spec))  # a cleared plan keeps the deployment's start
    assert world.state().started_at == started_at
    assert [a["name"] for a in result["alarms_firing"]] == ["lego-api-db"]
    assert "alarms in ALARM since this deployment began, not excused: lego-api-5xx" in result["warnings"]
    # The watch excuses the db episode and breaks on the 5xx alarm the deployment raised.
    plan = Plan.from_dict(result)
    soak = Soak(
        stage_pct=10,
        candidate=slot_query(plan, "green"),
        baseline=None,
        rules=SoakRules.from_plan(plan),
        watch_from=datetime.now(UTC),
    )
    breach = SoakWatch(soak, cloudwatch=CloudWatchMetricsHook(aws_conn_id=None)).check_alarms(datetime.now(UTC))
    assert breach["message"] == "alarm lego-api-5xx in ALARM: the candidate's errors"
    assert [a["name"] for a in breach["figures"]["alarms"]] == ["lego-api-5xx"]


def test_excused_takes_only_episodes_known_to_have_begun_before_the_start():
    started = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def alarm(name: str, since: datetime | None) -> AlarmState:
        return AlarmState(name, "ALARM", f"{name} reason", since, since)

    warnings: list[str] = []
    firing = [
        alarm("before", started - timedelta(seconds=1)),
        alarm("after", started + timedelta(seconds=1)),
        alarm("unknown", None),
        alarm("at-start", started),
    ]
    excused = PlanDeploymentOperator._excused(firing, started.isoformat(), warnings)
    assert excused == [
        {"name": "before", "state": "ALARM", "reason": "before reason", "since": "2026-11-30T11:59:59+00:00"}
    ]
    assert warnings[-1] == "alarms in ALARM since this deployment began, not excused: after, unknown, at-start"

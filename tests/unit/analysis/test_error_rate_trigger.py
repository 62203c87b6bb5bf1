"""ErrorRateTrigger against moto CloudWatch/Route53: breaches at the first poll, verdicts on settled data."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from airflow.serialization.serialized_objects import BaseSerialization

from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook, ErrorRateQuery
from bluegreen_provider.hooks.route53 import HealthCheckStatus, Route53Hook
from bluegreen_provider.soak import MAX_SAMPLES, ExcusedAlarm, Soak, SoakRules, SoakWatch, WatchedSlot, hms
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

from .conftest import ALARM, BLUE_ALIAS, FUNCTIONS, GREEN_ALIAS, first_event

RULES = SoakRules(
    threshold_pct=5.0,
    min_requests=20,
    window_seconds=30,
    period_seconds=1,
    lag_seconds=0,
    poll_interval=1.0,
    alarms=(ALARM,),
)


def make_soak(
    soak_seconds: float,
    *,
    clock_start: datetime | None = None,
    watch_from: datetime | None = None,
    health_check_id: str | None = None,
    propagating: bool = False,
    **rules: Any,
) -> Soak:
    """A soak of green at 10 % against blue; its clock starts now unless it is still propagating."""
    now = datetime.now(UTC)
    start = None if propagating else clock_start or now
    return Soak(
        stage_pct=10,
        candidate=WatchedSlot("green", ErrorRateQuery.lambda_aliases(list(FUNCTIONS), GREEN_ALIAS)),
        baseline=WatchedSlot("blue", ErrorRateQuery.lambda_aliases(list(FUNCTIONS), BLUE_ALIAS)),
        rules=replace(RULES, **rules),
        watch_from=watch_from or start or now,
        soak_seconds=soak_seconds,
        clock_start=start,
        health_check_id=health_check_id,
    )


def make_trigger(soak_seconds: float, mode: str = "soak", soak: Soak | None = None, **kwargs: Any) -> ErrorRateTrigger:
    trigger_kwargs = {k: kwargs.pop(k) for k in ("change_id", "timeout_seconds") if k in kwargs}
    soak = soak or make_soak(soak_seconds, **kwargs)
    return ErrorRateTrigger(soak=soak.to_dict(), mode=mode, aws_conn_id=None, region_name="us-east-1", **trigger_kwargs)


async def run_with(trigger: ErrorRateTrigger, action: Any, after: float) -> tuple[dict[str, Any], float]:
    """Run the trigger; ``after`` seconds in, do ``action`` in a thread. Returns the event and when it came."""
    done: dict[str, float] = {}

    async def act() -> None:
        await asyncio.sleep(after)
        await asyncio.to_thread(action)
        done["at"] = time.monotonic()

    task = asyncio.create_task(act())
    try:
        async for event in trigger.run():
            return event.payload, time.monotonic() - done.get("at", time.monotonic())
    finally:
        task.cancel()
    raise AssertionError("trigger ended without an event")


# -- the trigger itself ---------------------------------------------------------------------------


def test_serialize_round_trips_every_setting():
    soak = make_soak(
        300,
        health_check_id="hc",
        excused_alarms=(ExcusedAlarm(ALARM, "2026-01-01T00:00:00+00:00"),),
        propagating=True,
    )
    trigger = make_trigger(300, mode="propagation", soak=soak, change_id="C1", timeout_seconds=45)
    classpath, kwargs = trigger.serialize()
    assert classpath == "bluegreen_provider.triggers.error_rate.ErrorRateTrigger"
    # What the triggerer stores must survive Airflow's own serializer and rebuild an equal trigger.
    restored = ErrorRateTrigger(**BaseSerialization.deserialize(BaseSerialization.serialize(kwargs)))
    assert restored.serialize() == (classpath, kwargs)
    assert Soak.from_dict(restored.soak) == soak
    assert (kwargs["mode"], kwargs["change_id"], kwargs["timeout_seconds"]) == ("propagation", "C1", 45)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [({"mode": "watch"}, "mode must be one of"), ({"mode": "propagation"}, "needs the change_id")],
)
def test_bad_trigger_arguments_are_refused(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        ErrorRateTrigger(soak=make_soak(1).to_dict(), **kwargs)


@pytest.mark.parametrize("inject_after", [1.3, 2.6])
def test_error_rate_breach_is_reported_at_the_first_poll_that_sees_it(world, inject_after):
    soak = 60
    trigger = make_trigger(soak)
    world.put_traffic(200, 0)  # healthy traffic first: the first polls must stay quiet

    started = time.monotonic()
    event, latency = asyncio.run(
        asyncio.wait_for(run_with(trigger, lambda: world.put_traffic(500, 156), inject_after), 30)
    )
    print(f"\nbreach injected {inject_after}s into the soak -> event after {latency:.2f}s (poll interval 1s)")
    assert event["status"] == "breach" and event["rule"] == "error_rate"
    # 156 of 700 requests in the window: 22.3 %; live had no traffic.
    assert event["message"].startswith("error rate 22.3 % > 5.0 % on green (156 errors / 700 requests, ")
    assert event["message"].endswith("; blue — (0/0)")
    assert event["figures"]["errors"] == 156 and event["figures"]["requests"] == 700
    assert event["figures"]["candidate"] == {"slot": "green", "requests": 700, "errors": 156, "rate_pct": 156 / 7}
    assert latency < 3.0, "a breach must surface within a poll or two, not at soak end"
    assert time.monotonic() - started < soak / 4
    assert event["samples"][-1]["errors"] == 156
    assert event["propagating"] is False


def test_window_below_min_requests_is_not_judged_but_whole_soak_is(world):
    # 3 errors of 15 requests: 20 %, but below min_requests=20 per window -> no early breach;
    # the soak total is still 15 requests -> not enough data.
    trigger = make_trigger(2.5)
    world.put_traffic(15, 3)
    event = first_event(trigger)
    assert event["status"] == "no_data"
    assert event["message"].startswith("not enough data: 15 requests < min 20 on green")


def test_clean_soak_summary_against_live(world):
    trigger = make_trigger(3.2)  # the soak starts before the traffic it judges
    stamped = world.put_traffic(400, 4)
    world.put_traffic(3600, 36, alias=BLUE_ALIAS)
    event = first_event(trigger)
    assert event["status"] == "clean"
    s = event["summary"]
    assert (s["stage_pct"], s["requests"], s["errors"], s["rate_pct"]) == (10, 400, 4, 1.0)
    assert s["max_rate_pct"] == 1.0
    assert s["alarms_seen"] == []
    assert s["duration_s"] == 3.2
    assert 2 <= len(s["samples"]) <= 7  # one per second (polls keep their rhythm) through the settle wait
    assert set(s["samples"][0]) == {"t", "requests", "errors", "rate_pct", "live_rate_pct"}
    assert s["candidate"] == {"slot": "green", "requests": 400, "errors": 4, "rate_pct": 1.0}
    assert s["live"] == {"slot": "blue", "requests": 3600, "errors": 36, "rate_pct": 1.0}
    comparison = s["comparison"]
    assert (comparison["result"], comparison["candidate_errors"], comparison["baseline_requests"]) == ("pass", 4, 3600)
    assert comparison["looks"] == Soak.from_dict(trigger.soak).looks == 6  # ceil((3.2 + 1) / 1) + 1
    # The last datapoint judged is the one of the traffic's second: the summary says until when.
    judged = stamped.replace(microsecond=0) + timedelta(seconds=1)
    assert datetime.fromisoformat(s["judged_until"]) == judged
    assert s["settle_seconds"] == 1


# -- the verdict waits for late datapoints --------------------------------------------------------


def test_verdict_waits_period_plus_lag_and_judges_data_published_late(world):
    # Soak 2 s, period 1 s + lag 1 s: the verdict comes 2 s after the clock ends. Polls look at the
    # last second only, so errors stamped early in the soak but published after its end are seen by
    # the whole-soak verdict alone: at its wall-clock end the soak passed.
    soak = make_soak(2, window_seconds=1, lag_seconds=1, poll_interval=0.5)
    trigger = make_trigger(2, soak=soak)
    assert trigger.deadline(trigger.watch()) == soak.soak_end + timedelta(seconds=2) == soak.verdict_at
    world.put_traffic(200, 0)
    at_clock_end: dict[str, Any] = {}

    def publish_late() -> None:
        watch = SoakWatch(soak, cloudwatch=CloudWatchMetricsHook(aws_conn_id=None, region_name="us-east-1"))
        at_clock_end.update(watch.finish(datetime.now(UTC)))
        world.put_traffic(100, 40, at=soak.clock_start + timedelta(seconds=0.2))

    wait = (soak.soak_end - datetime.now(UTC)).total_seconds() + 0.3
    event, _ = asyncio.run(asyncio.wait_for(run_with(trigger, publish_late, wait), 20))
    assert at_clock_end["status"] == "clean" and at_clock_end["summary"]["requests"] == 200
    assert event["status"] == "breach" and event["rule"] == "error_rate"
    assert event["message"].startswith("error rate 13.3 % > 5.0 % on green (40 errors / 300 requests, ")
    assert event["message"].endswith(" over the whole soak")
    assert datetime.fromisoformat(event["detected_at"]) >= soak.verdict_at


def test_clean_verdict_only_after_the_settle_wait(world):
    soak = make_soak(1, lag_seconds=1, poll_interval=0.5)
    world.put_traffic(100, 0)
    event = first_event(make_trigger(1, soak=soak))
    assert event["status"] == "clean"
    # The event comes no earlier than period + lag (1 s + 1 s) after the clock ended.
    assert datetime.now(UTC) >= soak.soak_end + timedelta(seconds=2)
    assert event["summary"]["ended_at"] == soak.soak_end.isoformat()


def test_live_degraded_too_ends_the_soak_degraded(world):
    world.put_traffic(1000, 80)
    world.put_traffic(9000, 720, alias=BLUE_ALIAS)
    event = first_event(make_trigger(1.5, poll_interval=0.5))
    assert event["status"] == "degraded"
    assert event["message"].startswith("live is degraded too: green 8.0 % (80/1000) and blue 8.0 % (720/9000)")
    summary = event["summary"]
    assert summary["degraded"]["message"].startswith("live is degraded too")  # seen by the polls as well
    assert summary["live"]["rate_pct"] == 8.0 and summary["comparison"]["result"] == "pass"


def test_candidate_worse_than_live_breaks_under_the_threshold(world):
    world.put_traffic(1000, 30)
    world.put_traffic(9000, 45, alias=BLUE_ALIAS)
    event = first_event(make_trigger(30, poll_interval=0.5), timeout=10)
    assert (event["status"], event["rule"]) == ("breach", "relative")
    assert event["message"].startswith("green 3.0 % (30/1000) vs blue 0.5 % (45/9000): worse than 1.5x blue")
    assert event["figures"]["comparison"]["result"] == "fail"
    assert event["figures"]["live"] == {"slot": "blue", "requests": 9000, "errors": 45, "rate_pct": 0.5}


# -- propagation: watched from the change until Route53 is INSYNC --------------------------------


def test_breach_while_route53_propagates_ends_the_watch_before_insync(world, propagation):
    propagation(60)
    change_id = world.set_weights({"blue": 90, "green": 10})
    assert world.change_status(change_id) == "PENDING"
    trigger = make_trigger(300, mode="propagation", propagating=True, change_id=change_id, poll_interval=0.5)

    event, latency = asyncio.run(asyncio.wait_for(run_with(trigger, lambda: world.put_traffic(500, 156), 1.2), 15))
    assert event["status"] == "breach" and event["rule"] == "error_rate"
    assert event["propagating"] is True
    assert event["message"].startswith("error rate 31.2 % > 5.0 % on green (156 errors / 500 requests, ")
    assert latency < 2.5
    assert world.change_status(change_id) == "PENDING"  # the breach came before Route53 finished


def test_clean_propagation_ends_at_insync(world, propagation):
    propagation(1.5)
    submitted = datetime.now(UTC)
    change_id = world.set_weights({"blue": 90, "green": 10})
    world.put_traffic(100, 0)
    trigger = make_trigger(
        300, mode="propagation", propagating=True, watch_from=submitted, change_id=change_id, poll_interval=0.3
    )
    event = first_event(trigger, timeout=10)
    assert event == {"status": "insync", "insync_at": event["insync_at"], "change_id": change_id}
    insync_at = datetime.fromisoformat(event["insync_at"])
    assert submitted + timedelta(seconds=1.5) <= insync_at < submitted + timedelta(seconds=3)
    assert world.change_status(change_id) == "INSYNC"


def test_propagation_times_out(world, propagation):
    propagation(60)
    change_id = world.set_weights({"blue": 90, "green": 10})
    trigger = make_trigger(
        300, mode="propagation", propagating=True, change_id=change_id, timeout_seconds=1, poll_interval=0.3
    )
    started = time.monotonic()
    event = first_event(trigger, timeout=10)
    assert event == {
        "status": "timeout",
        "change_id": change_id,
        "message": f"Route53 change {change_id} still PENDING after 1s",
    }
    assert 1 <= time.monotonic() - started < 3
    assert world.change_status(change_id) == "PENDING"


# -- guard: after promotion, while the previous release is retained ------------------------------


def test_guard_ends_clean_at_the_clock_end(world):
    world.put_traffic(100, 0)
    soak = make_soak(1.5, poll_interval=0.5, lag_seconds=30)  # the guard does not wait for the lag
    started = time.monotonic()
    event = first_event(make_trigger(1.5, mode="guard", soak=soak))
    assert event["status"] == "clean"
    assert time.monotonic() - started < 3
    assert datetime.now(UTC) >= soak.soak_end
    assert event["summary"]["requests"] == 100 and event["summary"]["comparison"] is None


def test_guard_breaks_on_a_new_alarm_episode(world):
    world.set_alarm("ALARM", "the incident before the promotion")
    excused = ExcusedAlarm(ALARM, world.alarm_since().isoformat())
    trigger = make_trigger(30, mode="guard", poll_interval=0.5, excused_alarms=(excused,))

    def new_episode() -> None:
        world.set_alarm("OK", "recovered")
        world.set_alarm("ALARM", "errors after the promotion")

    event, latency = asyncio.run(asyncio.wait_for(run_with(trigger, new_episode, 1.2), 15))
    assert (event["status"], event["rule"]) == ("breach", "alarm")
    assert "in ALARM again" in event["message"] and event["message"].endswith("errors after the promotion")
    assert latency < 2


# -- alarms ---------------------------------------------------------------------------------------


def test_alarm_breach(world):
    trigger = make_trigger(30)

    def fire() -> None:
        world.set_alarm("ALARM", "Threshold Crossed: 1 datapoint [42.0] > 5.0")

    event, _ = asyncio.run(asyncio.wait_for(run_with(trigger, fire, 1.5), 20))
    assert event["rule"] == "alarm"
    assert event["message"] == f"alarm {ALARM} in ALARM: Threshold Crossed: 1 datapoint [42.0] > 5.0"
    alarm = event["figures"]["alarms"][0]
    assert alarm["state"] == "ALARM"
    assert datetime.fromisoformat(alarm["since"]) == world.alarm_since()


def test_alarm_in_the_episode_the_plan_excused_does_not_break_the_soak(world):
    world.set_alarm("ALARM", "the incident the deployment is fixing")
    trigger = make_trigger(2.2, excused_alarms=(ExcusedAlarm(ALARM, world.alarm_since().isoformat()),))
    world.put_traffic(100, 0)
    event = first_event(trigger)
    assert event["status"] == "clean"
    assert event["summary"]["alarms_seen"] == [ALARM]


def test_excused_alarm_in_a_new_episode_breaks_the_soak(world):
    # The plan saw the alarm firing since 10 minutes ago; it recovered and fired again since.
    old_episode = datetime.now(UTC) - timedelta(minutes=10)
    world.set_alarm("OK", "recovered")
    world.set_alarm("ALARM", "new errors")
    event = first_event(make_trigger(10, excused_alarms=(ExcusedAlarm(ALARM, old_episode.isoformat()),)))
    assert event["rule"] == "alarm"
    assert event["message"] == (
        f"alarm {ALARM} in ALARM again: a new episode since {hms(world.alarm_since())} (the one already firing "
        f"before the deployment began at {hms(old_episode)}): new errors"
    )


# -- health check ---------------------------------------------------------------------------------


def test_health_check_breach(world):
    unhealthy = HealthCheckStatus("hc-123", healthy=False, checkers=8, failing=6, detail="us-east-1: Failure: HTTP 503")
    with mock.patch.object(Route53Hook, "health_check_status", return_value=unhealthy) as status:
        event = first_event(make_trigger(30, health_check_id="hc-123"), timeout=10)
    status.assert_called_with("hc-123")
    assert event["rule"] == "health_check"
    assert event["message"] == "Route53 health check hc-123 unhealthy: us-east-1: Failure: HTTP 503"
    assert event["figures"]["failing"] == 6


def test_health_check_without_observations_is_not_a_breach(world):
    trigger = make_trigger(1.5, health_check_id="hc-1")
    world.put_traffic(50, 0)
    pending = HealthCheckStatus("hc-1", healthy=False, checkers=0, failing=0, detail="no observations")
    with mock.patch.object(Route53Hook, "health_check_status", return_value=pending) as status:
        event = first_event(trigger)
    assert event["status"] == "clean"
    assert status.call_count >= 2


# -- AWS errors -----------------------------------------------------------------------------------


def test_transient_aws_error_is_retried(world):
    trigger = make_trigger(2.5, poll_interval=0.5)
    world.put_traffic(100, 0)
    real = CloudWatchMetricsHook.error_rates
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("endpoint unreachable")
        return real(self, *args, **kwargs)

    with mock.patch.object(CloudWatchMetricsHook, "error_rates", flaky):
        event = first_event(trigger)
    assert event["status"] == "clean" and calls["n"] >= 3


def test_persistent_aws_error_ends_the_soak(world):
    with mock.patch.object(CloudWatchMetricsHook, "error_rates", side_effect=ConnectionError("endpoint unreachable")):
        event = first_event(make_trigger(60, poll_interval=0.2, max_consecutive_errors=3), timeout=10)
    assert event["status"] == "error"
    assert event["message"].startswith("3 polls in a row failed to read AWS; last: ")
    assert event["message"].endswith("ConnectionError: endpoint unreachable")
    assert len(event["errors"]) == 3


def test_deleted_alarm_is_an_error_at_once(world):
    world.cloudwatch.delete_alarms(AlarmNames=[ALARM])
    started = time.monotonic()
    event = first_event(make_trigger(60), timeout=10)
    assert event["status"] == "error" and event["message"].startswith("cannot watch the soak: ")
    assert ALARM in event["message"] and event["errors"] == []
    assert time.monotonic() - started < 2


def test_samples_stay_bounded(world):
    watch = make_trigger(1).watch()
    base = datetime.now(UTC)
    for i in range(3 * MAX_SAMPLES):
        watch._add_sample(base + timedelta(seconds=i), mock.Mock(requests=i, errors=0, rate_pct=0.0), None)
    assert len(watch.samples) <= MAX_SAMPLES
    assert watch.samples[-1]["requests"] == 3 * MAX_SAMPLES - 1
    assert watch.samples[0]["requests"] == 0

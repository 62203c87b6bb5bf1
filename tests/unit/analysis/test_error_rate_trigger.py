"""ErrorRateTrigger against moto CloudWatch/Route53: breaches at the first poll, totals at soak end."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from airflow.serialization.serialized_objects import BaseSerialization

from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook, ErrorRateQuery
from bluegreen_provider.hooks.route53 import HealthCheckStatus, Route53Hook
from bluegreen_provider.triggers.error_rate import MAX_SAMPLES, ErrorRateTrigger

from .conftest import ALARM, FUNCTIONS, GREEN_ALIAS, first_event


def make_trigger(soak_seconds: float, **overrides) -> ErrorRateTrigger:
    start = datetime.now(UTC)
    kwargs = {
        "query": ErrorRateQuery.lambda_aliases(list(FUNCTIONS), GREEN_ALIAS).to_dict(),
        "soak_start": start.isoformat(),
        "soak_end": (start + timedelta(seconds=soak_seconds)).isoformat(),
        "stage_pct": 10,
        "slot": "green",
        "threshold_pct": 5.0,
        "min_requests": 20,
        "window_seconds": 30,
        "period_seconds": 1,
        "poll_interval": 1.0,
        "alarm_names": [ALARM],
        "aws_conn_id": None,
        "region_name": "us-east-1",
    }
    kwargs.update(overrides)
    return ErrorRateTrigger(**kwargs)


def test_serialize_round_trips_every_setting():
    trigger = make_trigger(300, ignored_alarms=[ALARM], ignored_since="2026-01-01T00:00:00+00:00", health_check_id="hc")
    classpath, kwargs = trigger.serialize()
    assert classpath == "bluegreen_provider.triggers.error_rate.ErrorRateTrigger"
    # What the triggerer stores must survive Airflow's own serializer and rebuild an equal trigger.
    restored = ErrorRateTrigger(**BaseSerialization.deserialize(BaseSerialization.serialize(kwargs)))
    assert restored.serialize() == (classpath, kwargs)
    assert kwargs["ignored_alarms"] == [ALARM] and kwargs["health_check_id"] == "hc"


@pytest.mark.parametrize("inject_after", [1.3, 2.6])
def test_error_rate_breach_is_reported_at_the_first_poll_that_sees_it(world, inject_after):
    soak = 60
    trigger = make_trigger(soak)
    world.put_traffic(200, 0)  # healthy traffic first: the first polls must stay quiet

    async def scenario():
        injected = {}

        async def inject():
            await asyncio.sleep(inject_after)
            injected["at"] = time.monotonic()
            await asyncio.to_thread(world.put_traffic, 500, 156)

        task = asyncio.create_task(inject())
        async for event in trigger.run():
            return event.payload, time.monotonic() - injected["at"], task

    started = time.monotonic()
    event, latency, _ = asyncio.run(asyncio.wait_for(scenario(), 30))
    print(f"\nbreach injected {inject_after}s into the soak -> event after {latency:.2f}s (poll interval 1s)")
    assert event["status"] == "breach" and event["rule"] == "error_rate"
    # 156 of 700 requests in the window: 22.3 %.
    assert event["message"].startswith("error rate 22.3 % > 5.0 % on green (156 errors / 700 requests, ")
    assert event["figures"]["errors"] == 156 and event["figures"]["requests"] == 700
    assert latency < 3.0, "a breach must surface within a poll or two, not at soak end"
    assert time.monotonic() - started < soak / 4
    assert event["samples"][-1]["errors"] == 156


def test_window_below_min_requests_is_not_judged_but_whole_soak_is(world):
    # 3 errors of 15 requests: 20 %, but below min_requests=20 per window -> no early breach;
    # the soak total is still 15 requests -> not enough data.
    trigger = make_trigger(2.5)
    world.put_traffic(15, 3)
    event = first_event(trigger)
    assert event["status"] == "no_data"
    assert event["message"].startswith("not enough data: 15 requests < min 20 on green")


def test_clean_soak_summary(world):
    trigger = make_trigger(3.2)  # the soak starts before the traffic it judges
    world.put_traffic(400, 4)
    event = first_event(trigger)
    assert event["status"] == "clean"
    s = event["summary"]
    assert (s["stage_pct"], s["requests"], s["errors"], s["rate_pct"]) == (10, 400, 4, 1.0)
    assert s["max_rate_pct"] == 1.0
    assert s["alarms_seen"] == []
    assert 3.0 <= s["duration_s"] < 6
    assert 2 <= len(s["samples"]) <= 6  # one per second (polls keep their rhythm), plus the final total
    assert set(s["samples"][0]) == {"t", "requests", "errors", "rate_pct"}


def test_alarm_breach(world):
    trigger = make_trigger(30)

    async def scenario():
        async def fire():
            await asyncio.sleep(1.5)
            await asyncio.to_thread(world.set_alarm, "ALARM", "Threshold Crossed: 1 datapoint [42.0] > 5.0")

        task = asyncio.create_task(fire())
        async for event in trigger.run():
            await task
            return event.payload

    event = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert event["rule"] == "alarm"
    assert event["message"] == f"alarm {ALARM} in ALARM: Threshold Crossed: 1 datapoint [42.0] > 5.0"
    assert event["figures"]["alarms"][0]["state"] == "ALARM"


def test_alarm_already_firing_at_plan_time_is_ignored(world):
    world.set_alarm("ALARM", "the incident the deployment is fixing")
    planned = datetime.now(UTC) + timedelta(milliseconds=10)
    time.sleep(0.05)
    trigger = make_trigger(2.2, ignored_alarms=[ALARM], ignored_since=planned.isoformat())
    world.put_traffic(100, 0)
    event = first_event(trigger)
    assert event["status"] == "clean"
    assert event["summary"]["alarms_seen"] == [ALARM]


def test_ignored_alarm_that_fires_again_during_the_soak_breaks_it(world):
    world.set_alarm("ALARM", "old incident")
    planned = datetime.now(UTC) + timedelta(milliseconds=10)
    time.sleep(0.05)
    world.set_alarm("OK", "recovered")
    world.set_alarm("ALARM", "new errors")
    event = first_event(make_trigger(10, ignored_alarms=[ALARM], ignored_since=planned.isoformat()))
    assert event["rule"] == "alarm"
    assert "in ALARM again" in event["message"] and event["message"].endswith("new errors")


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
    with mock.patch.object(Route53Hook, "health_check_status", return_value=pending):
        event = first_event(trigger)
    assert event["status"] == "clean"


def test_transient_aws_error_is_retried(world):
    trigger = make_trigger(2.5, poll_interval=0.5)
    world.put_traffic(100, 0)
    real = CloudWatchMetricsHook.error_rate
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("endpoint unreachable")
        return real(self, *args, **kwargs)

    with mock.patch.object(CloudWatchMetricsHook, "error_rate", flaky):
        event = first_event(trigger)
    assert event["status"] == "clean" and calls["n"] >= 3


def test_persistent_aws_error_ends_the_soak(world):
    with mock.patch.object(CloudWatchMetricsHook, "error_rate", side_effect=ConnectionError("endpoint unreachable")):
        event = first_event(make_trigger(60, poll_interval=0.2, max_consecutive_errors=3), timeout=10)
    assert event["status"] == "error"
    assert event["message"].startswith("3 polls in a row failed to read AWS; last: ")
    assert len(event["errors"]) == 3


def test_deleted_alarm_is_an_error_at_once(world):
    world.cloudwatch.delete_alarms(AlarmNames=[ALARM])
    event = first_event(make_trigger(60), timeout=10)
    assert event["status"] == "error" and "cannot watch the soak" in event["message"]
    assert ALARM in event["message"]


def test_samples_stay_bounded(world):
    trigger = make_trigger(1)
    watch = trigger.watch()
    base = datetime.now(UTC)
    for i in range(3 * MAX_SAMPLES):
        watch._add_sample(base + timedelta(seconds=i), mock.Mock(requests=i, errors=0, rate_pct=0.0))
    assert len(watch.samples) <= MAX_SAMPLES
    assert watch.samples[-1]["requests"] == 3 * MAX_SAMPLES - 1
    assert watch.samples[0]["requests"] == 0

"""ErrorRateSensor the amazon-provider way: execute -> TaskDeferred -> run the trigger -> execute_complete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

from bluegreen_provider.hooks.route53 import HealthCheckStatus, Route53Hook
from bluegreen_provider.sensors.error_rate import ErrorRateSensor
from bluegreen_provider.soak import ExcusedAlarm, Soak
from bluegreen_provider.state import Phase
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

from .conftest import ALARM, BLUE_ALIAS, OWNER, first_event, make_context, make_plan, make_spec


def sensor(**kwargs) -> ErrorRateSensor:
    return ErrorRateSensor(
        task_id=f"soak_{kwargs.get('stage_pct', 10)}", aws_conn_id=None, **{"stage_pct": 10, **kwargs}
    )


def deferred(op: ErrorRateSensor, context) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as exc:
        op.execute(context)
    return exc.value


def soak_of(exc: TaskDeferred) -> Soak:
    return Soak.from_dict(exc.trigger.soak)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"stage_pct": 0}, "stage_pct"),
        ({"stage_pct": 100}, "stage_pct"),
        ({"soak_seconds": -1}, "soak_seconds"),
        ({"poll_interval": 0}, "poll_interval must be a positive number"),
        ({"threshold_pct": 0}, "threshold_pct must be in"),
        ({"margin": 0.5}, "margin must be a number >= 1"),
        ({"lag_seconds": -1}, "lag_seconds must be a non-negative number"),
        ({"window_seconds": 0}, "window_seconds must be a positive number"),
        ({"no_data_policy": "ignore"}, "no_data_policy"),
        ({"alarms": ALARM}, "alarms must be a list of alarm names"),
        ({"soft_fail": True}, "soft_fail"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        sensor(**kwargs)


def test_split_mismatch_is_refused_before_soaking(world):
    # After a rollback the candidate has no traffic: a cleared soak must not watch an empty slot.
    context = make_context(make_plan(world))
    with pytest.raises(AirflowFailException) as exc:
        sensor().execute(context)
    assert str(exc.value).startswith("split is blue 100 / green 0, expected green 10 %: clear from shift_10")


def attach_health_check(world) -> str:
    world.route53.create_health_check(
        CallerReference="hc", HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": "green.example"}
    )
    hc_id = world.route53.list_health_checks()["HealthChecks"][0]["Id"]
    record = world.sets()["green"]
    world.route53.change_resource_record_sets(
        HostedZoneId=world.zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {**record, "HealthCheckId": hc_id}}]},
    )
    return hc_id


def test_defers_with_absolute_times_and_rules_from_the_spec(world):
    world.set_weights({"blue": 90, "green": 10})
    hc_id = attach_health_check(world)
    since = "2026-11-30T11:00:00+00:00"
    plan = make_plan(
        world,
        make_spec(metrics_lag_seconds=30, comparison_margin=2.0),
        alarms_firing=[{"name": ALARM, "state": "ALARM", "reason": "already firing", "since": since}],
    )
    # The shift watched from the change's submission; the soak's clock starts at its INSYNC.
    submitted = datetime.now(UTC) - timedelta(seconds=20)
    insync = submitted + timedelta(seconds=12)
    shifted = {"submitted_at": submitted.isoformat(), "insync_at": insync.isoformat(), "change_id": "C1"}
    exc = deferred(sensor(), make_context(plan, {"shift_10": shifted}))
    trigger = exc.trigger
    assert isinstance(trigger, ErrorRateTrigger) and exc.method_name == "execute_complete"
    assert trigger.mode == "soak"
    soak = soak_of(exc)
    assert (soak.watch_from, soak.clock_start) == (submitted, insync)
    assert soak.soak_seconds == 3  # the spec's step of 10 %
    assert soak.verdict_at == insync + timedelta(seconds=3 + 1 + 30)  # clock end + period + lag
    assert exc.timeout >= soak.verdict_at - datetime.now(UTC)
    assert soak.health_check_id == hc_id
    rules = soak.rules
    assert (rules.threshold_pct, rules.min_requests, rules.poll_interval, rules.alarms) == (5.0, 20, 1, (ALARM,))
    assert (rules.period_seconds, rules.lag_seconds, rules.margin) == (1, 30, 2.0)
    assert rules.excused_alarms == (ExcusedAlarm(ALARM, since),)
    assert soak.candidate.slot == "green" and soak.baseline.slot == "blue"
    assert soak.candidate.query.dimension_sets[0] == {
        "FunctionName": "lego-api-moc",
        "Resource": "lego-api-moc:production-green",
    }
    assert soak.baseline.query.dimension_sets[0]["Resource"] == f"lego-api-moc:{BLUE_ALIAS}"


def test_a_cleared_soak_starts_a_fresh_window(world):
    world.set_weights({"blue": 90, "green": 10})
    earlier = datetime.now(UTC) - timedelta(minutes=30)
    shifted = {"submitted_at": earlier.isoformat(), "insync_at": earlier.isoformat()}
    before = datetime.now(UTC)
    soak = soak_of(deferred(sensor(), make_context(make_plan(world), {"shift_10": shifted}, try_number=2)))
    assert before <= soak.watch_from == soak.clock_start <= datetime.now(UTC)


def test_rule_overrides_reach_the_trigger(world):
    world.set_weights({"blue": 90, "green": 10})
    soak = soak_of(deferred(sensor(threshold_pct=1.5, window_seconds=60), make_context(make_plan(world))))
    assert (soak.rules.threshold_pct, soak.rules.window_seconds, soak.rules.min_requests) == (1.5, 60, 20)


def test_apigateway_metrics_source(world):
    world.set_weights({"blue": 90, "green": 10})
    spec = make_spec(
        metrics_source="apigateway",
        slots={
            "blue": {"set_identifier": "blue", "alias": "production-blue", "api_name": "lego-api-blue"},
            "green": {"set_identifier": "green", "alias": "production-green", "api_name": "lego-api-green"},
        },
    )
    soak = deferred(sensor(), make_context(make_plan(world, spec))).trigger.soak
    assert soak["candidate"]["query"] == {
        "namespace": "AWS/ApiGateway",
        "requests_metric": "Count",
        "errors_metric": "5XXError",
        "dimension_sets": [{"ApiName": "lego-api-green"}],
    }
    assert soak["baseline"]["query"]["dimension_sets"] == [{"ApiName": "lego-api-blue"}]


def test_unknown_alarm_is_refused_before_soaking(world):
    world.set_weights({"blue": 90, "green": 10})
    with pytest.raises(AirflowFailException, match="lego-api-gateway-5xx-error'] do not exist"):
        sensor(alarms=["lego-api-gateway-5xx-error"]).execute(make_context(make_plan(world)))


def test_error_rate_breach_fails_with_figures_and_current_traffic(world):
    world.set_weights({"blue": 90, "green": 10})
    context = make_context(make_plan(world))
    op = sensor(soak_seconds=30)
    exc = deferred(op, context)
    world.put_traffic(500, 156)
    event = first_event(exc.trigger, timeout=15)
    with pytest.raises(AirflowFailException) as failure:
        op.execute_complete(context, event)
    message = str(failure.value)
    assert message.startswith(
        "soak at 10 % breached (error_rate): error rate 31.2 % > 5.0 % on green (156 errors / 500 requests, "
    )
    assert message.endswith("; traffic now blue 90 / green 10 (rollback restores blue)")
    verdict = context["ti"].pushed["verdict"]
    assert (verdict["status"], verdict["rule"]) == ("breach", "error_rate")
    assert verdict["message"].startswith("error rate 31.2 % > 5.0 % on green")
    assert verdict["figures"]["candidate"]["errors"] == 156
    # What the soak saw up to the breach stays with the verdict, for the run timeline's chart.
    assert verdict["samples"] == event["samples"] and verdict["samples"][-1]["rate_pct"] == pytest.approx(31.2)
    assert (verdict["watched_from"], verdict["started_at"]) == (event["watched_from"], event["started_at"])


def test_breach_during_propagation_says_so(world):
    world.set_weights({"blue": 90, "green": 10})
    context = make_context(make_plan(world))
    event = {"status": "breach", "rule": "alarm", "message": f"alarm {ALARM} in ALARM: x", "propagating": True}
    with pytest.raises(AirflowFailException, match=r"breached \(alarm\) while Route53 propagated the change: alarm"):
        sensor().execute_complete(context, event)


def test_health_check_breach_fails_the_sensor(world):
    world.set_weights({"blue": 50, "green": 50})
    context = make_context(make_plan(world))
    op = sensor(stage_pct=50, soak_seconds=30)
    exc = deferred(op, context)
    exc.trigger.soak["health_check_id"] = "hc-1"
    bad = HealthCheckStatus("hc-1", healthy=False, checkers=8, failing=8, detail="us-east-1: Failure: timeout")
    with mock.patch.object(Route53Hook, "health_check_status", return_value=bad):
        event = first_event(exc.trigger, timeout=15)
    with pytest.raises(AirflowFailException, match=r"\(health_check\): Route53 health check hc-1 unhealthy"):
        op.execute_complete(context, event)


def test_clean_soak_returns_summary(world):
    world.set_weights({"blue": 90, "green": 10})
    context = make_context(make_plan(world))
    op = sensor()
    exc = deferred(op, context)
    world.put_traffic(300, 3)
    world.put_traffic(2700, 27, alias=BLUE_ALIAS)
    result = op.execute_complete(context, first_event(exc.trigger))
    assert result["outcome"] == "clean"
    assert (result["stage_pct"], result["requests"], result["errors"], result["rate_pct"]) == (10, 300, 3, 1.0)
    assert result["live"] == {"slot": "blue", "requests": 2700, "errors": 27, "rate_pct": 1.0}
    assert result["comparison"]["result"] == "pass"
    assert set(result) == {
        "stage_pct", "requests", "errors", "rate_pct", "max_rate_pct", "alarms_seen", "samples",
        "watched_from", "started_at", "ended_at", "duration_s", "candidate", "live", "comparison",
        "judged_until", "settle_seconds", "degraded", "outcome",
    }  # fmt: skip
    assert "verdict" not in context["ti"].pushed


@pytest.mark.parametrize("policy", ["fail", "pass"])
def test_no_data_policy(world, policy):
    world.set_weights({"blue": 90, "green": 10})
    context = make_context(make_plan(world, make_spec(no_data_policy=policy)))
    op = sensor(soak_seconds=2)
    event = first_event(deferred(op, context).trigger)
    assert event["status"] == "no_data"
    if policy == "fail":
        with pytest.raises(AirflowFailException, match=r"not enough data: 0 requests < min 20 on green"):
            op.execute_complete(context, event)
    else:
        result = op.execute_complete(context, event)
        assert result["outcome"] == "no_data_passed" and result["requests"] == 0


def test_zero_soak_is_one_evaluation_without_deferring(world):
    world.set_weights({"blue": 90, "green": 10})
    context = make_context(make_plan(world))
    world.put_traffic(100, 1, seconds_ago=2)
    result = sensor(soak_seconds=0, window_seconds=60).execute(context)
    assert result["outcome"] == "clean" and result["requests"] == 100
    world.put_traffic(100, 40, seconds_ago=2)
    with pytest.raises(AirflowFailException, match=r"error rate 20.5 % > 5.0 % on green \(41 errors / 200 requests"):
        sensor(soak_seconds=0, window_seconds=60).execute(context)


def test_degraded_live_holds_the_step_instead_of_failing(world):
    spec = make_spec()
    world.declare(spec, {"blue": 90, "green": 10})
    context = make_context(make_plan(world, spec))
    op = sensor(soak_seconds=1, poll_interval=0.5)
    exc = deferred(op, context)
    world.put_traffic(1000, 80)
    world.put_traffic(9000, 720, alias=BLUE_ALIAS)
    event = first_event(exc.trigger)
    assert event["status"] == "degraded"
    with pytest.raises(AirflowSkipException) as skipped:
        op.execute_complete(context, event)
    message = str(skipped.value)
    assert message.startswith("held at 10 %: live is degraded too: green 8.0 % (80/1000) and blue 8.0 % (720/9000)")
    assert "Traffic stays at blue 90 / green 10" in message
    state = world.state()
    assert (state.phase, state.owner, state.split) == (Phase.HELD, OWNER, {"blue": 90, "green": 10})
    assert state.reason.startswith("held at 10 %: live is degraded too")
    assert world.weights() == {"blue": 90, "green": 10}
    assert context["ti"].pushed["verdict"]["status"] == "degraded"


def test_degraded_without_the_service_fails_and_says_why(world):
    world.set_weights({"blue": 90, "green": 10})  # no deployment state: there is nothing to hold
    context = make_context(make_plan(world))
    event = {"status": "degraded", "message": "live is degraded too: both above 5 %"}
    with pytest.raises(AirflowFailException, match=r"live is degraded too: both above 5 %; and not held: "):
        sensor().execute_complete(context, event)
    assert world.state() is None


def test_trigger_error_and_unexpected_events_fail(world):
    world.set_weights({"blue": 90, "green": 10})
    context = make_context(make_plan(world))
    with pytest.raises(AirflowFailException, match="aborted: 3 polls in a row failed"):
        sensor().execute_complete(context, {"status": "error", "message": "3 polls in a row failed to read AWS"})
    assert context["ti"].pushed["verdict"]["status"] == "error"
    with pytest.raises(AirflowFailException, match="unexpected event"):
        sensor().execute_complete(context, None)
    with pytest.raises(AirflowFailException, match="unexpected event"):
        sensor().execute_complete(context, {"status": "insync"})  # a propagation event is not a soak's

"""ErrorRateSensor the amazon-provider way: execute -> TaskDeferred -> run the trigger -> execute_complete."""

from __future__ import annotations

from datetime import datetime, timedelta
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bluegreen_provider.hooks.route53 import HealthCheckStatus, Route53Hook
from bluegreen_provider.sensors.error_rate import ErrorRateSensor
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

from .conftest import ALARM, first_event, make_context, make_plan, make_spec


def sensor(**kwargs) -> ErrorRateSensor:
    return ErrorRateSensor(
        task_id=f"soak_{kwargs.get('stage_pct', 10)}", aws_conn_id=None, **{"stage_pct": 10, **kwargs}
    )


def deferred(op: ErrorRateSensor, context) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as exc:
        op.execute(context)
    return exc.value


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"stage_pct": 0}, "stage_pct"),
        ({"stage_pct": 100}, "stage_pct"),
        ({"soak_seconds": -1}, "soak_seconds"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"threshold_pct": 0}, "threshold_pct"),
        ({"no_data_policy": "ignore"}, "no_data_policy"),
        ({"alarms": ALARM}, "alarms"),
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


def test_defers_with_absolute_soak_and_settings_from_the_spec(world):
    world.set_weights({"blue": 90, "green": 10})
    world.route53.create_health_check(
        CallerReference="hc", HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": "green.example"}
    )
    hc_id = world.route53.list_health_checks()["HealthChecks"][0]["Id"]
    record = world.sets()["green"]
    world.route53.change_resource_record_sets(
        HostedZoneId=world.zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {**record, "HealthCheckId": hc_id}}]},
    )
    plan = make_plan(world, alarms_firing=[{"name": ALARM, "reason": "already firing"}])
    exc = deferred(sensor(), make_context(plan))
    trigger = exc.trigger
    assert isinstance(trigger, ErrorRateTrigger) and exc.method_name == "execute_complete"
    _, kw = trigger.serialize()
    soak = datetime.fromisoformat(kw["soak_end"]) - datetime.fromisoformat(kw["soak_start"])
    assert soak == timedelta(seconds=3)  # the spec's step of 10 %
    assert exc.timeout >= soak
    assert kw["health_check_id"] == hc_id
    assert kw["ignored_alarms"] == [ALARM] and kw["ignored_since"] == plan["created_at"]
    assert (kw["threshold_pct"], kw["min_requests"], kw["poll_interval"], kw["alarm_names"]) == (5.0, 20, 1, [ALARM])
    assert kw["query"]["dimension_sets"][0] == {
        "FunctionName": "lego-api-moc",
        "Resource": "lego-api-moc:production-green",
    }


def test_apigateway_metrics_source(world):
    world.set_weights({"blue": 90, "green": 10})
    spec = make_spec(
        metrics_source="apigateway",
        slots={
            "blue": {"set_identifier": "blue", "alias": "production-blue", "api_name": "lego-api-blue"},
            "green": {"set_identifier": "green", "alias": "production-green", "api_name": "lego-api-green"},
        },
    )
    exc = deferred(sensor(), make_context(make_plan(world, spec)))
    assert exc.trigger.query == {
        "namespace": "AWS/ApiGateway",
        "requests_metric": "Count",
        "errors_metric": "5XXError",
        "dimension_sets": [{"ApiName": "lego-api-green"}],
    }


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


def test_health_check_breach_fails_the_sensor(world):
    world.set_weights({"blue": 50, "green": 50})
    context = make_context(make_plan(world))
    op = sensor(stage_pct=50, soak_seconds=30)
    exc = deferred(op, context)
    exc.trigger.health_check_id = "hc-1"
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
    result = op.execute_complete(context, first_event(exc.trigger))
    assert result["outcome"] == "clean"
    assert (result["stage_pct"], result["requests"], result["errors"], result["rate_pct"]) == (10, 300, 3, 1.0)
    assert set(result) == {
        "stage_pct", "requests", "errors", "rate_pct", "max_rate_pct", "alarms_seen", "samples",
        "started_at", "ended_at", "duration_s", "outcome",
    }  # fmt: skip


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


def test_trigger_error_and_unexpected_events_fail(world):
    world.set_weights({"blue": 90, "green": 10})
    context = make_context(make_plan(world))
    with pytest.raises(AirflowFailException, match="aborted: 3 polls in a row failed"):
        sensor().execute_complete(context, {"status": "error", "message": "3 polls in a row failed to read AWS"})
    with pytest.raises(AirflowFailException, match="unexpected event"):
        sensor().execute_complete(context, None)

"""CloudWatchMetricsHook against moto: sums, error-rate maths and alarm states."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from bluegreen_provider.hooks.cloudwatch import (
    AlarmState,
    CloudWatchMetricsHook,
    ErrorRate,
    ErrorRateQuery,
    MetricQueryError,
    UnknownAlarmError,
)

# Whole minutes keep moto's period buckets (which start at StartTime) aligned with the data.
END = datetime.now(UTC).replace(second=0, microsecond=0)
START = END - timedelta(minutes=10)


@pytest.fixture
def cw(moto):
    return boto3.client("cloudwatch")


@pytest.fixture
def hook(moto):
    return CloudWatchMetricsHook(aws_conn_id=None)


def _put(cw, namespace, name, dims, values, *, at=START, step=timedelta(minutes=1), high_res=False):
    for i, value in enumerate(values):
        datum = {
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            "Timestamp": at + i * step,
            "Value": value,
        }
        if high_res:
            datum["StorageResolution"] = 1
        cw.put_metric_data(Namespace=namespace, MetricData=[datum])


GREEN_API = {"FunctionName": "api", "Resource": "api:production-green"}
GREEN_WORKER = {"FunctionName": "worker", "Resource": "worker:production-green"}


# ------------------------------------------------------------------ queries


def test_query_builders_and_json_round_trip():
    q = ErrorRateQuery.lambda_aliases(["api", "worker"], "production-green")
    assert q.namespace == "AWS/Lambda" and (q.requests_metric, q.errors_metric) == ("Invocations", "Errors")
    assert q.dimension_sets == (GREEN_API, GREEN_WORKER)
    assert ErrorRateQuery.from_dict(json.loads(json.dumps(q.to_dict()))) == q

    gw = ErrorRateQuery.api_gateway("orders-api", stage="prod")
    assert (gw.namespace, gw.requests_metric, gw.errors_metric) == ("AWS/ApiGateway", "Count", "5XXError")
    assert gw.dimension_sets == ({"ApiName": "orders-api", "Stage": "prod"},)
    assert ErrorRateQuery.api_gateway("orders-api").dimension_sets == ({"ApiName": "orders-api"},)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ErrorRateQuery.lambda_aliases("api", "green"), "non-empty list of names, got 'api'"),
        (lambda: ErrorRateQuery.lambda_aliases([], "green"), r"got \[\]"),
        (lambda: ErrorRateQuery("AWS/Lambda", "Invocations", "Errors", ()), "at least one dimension set"),
        (lambda: ErrorRateQuery("AWS/Lambda", "Invocations", "Errors", ({"F": 1},)), r"got \{'F': 1\}"),
        (lambda: ErrorRateQuery.from_dict({"namespace": "x"}), r"needs keys .*got \['namespace'\]"),
    ],
)
def test_query_bad_input(build, message):
    with pytest.raises(MetricQueryError, match=message):
        build()


# -------------------------------------------------------------------- sums


def test_metric_sum_uses_exact_dimensions_and_window(hook, cw):
    _put(cw, "AWS/Lambda", "Invocations", GREEN_API, [10, 20, 30])
    _put(cw, "AWS/Lambda", "Invocations", {"FunctionName": "api"}, [1000])  # other dimension set
    _put(cw, "AWS/Lambda", "Invocations", GREEN_API, [5000], at=END + timedelta(minutes=1))  # after window
    assert hook.metric_sum("AWS/Lambda", "Invocations", GREEN_API, start=START, end=END) == 60.0
    assert hook.metric_sum("AWS/Lambda", "Invocations", GREEN_API, start=START, end=END, period_seconds=300) == 60.0
    # [START+1m, START+2m) holds only the 20
    assert (
        hook.metric_sum(
            "AWS/Lambda", "Invocations", GREEN_API, start=START + timedelta(minutes=1), end=START + timedelta(minutes=2)
        )
        == 20.0
    )


def test_metric_sum_no_data_is_zero(hook):
    assert hook.metric_sum("AWS/Lambda", "Errors", GREEN_API, start=START, end=END) == 0.0


def test_metric_sum_high_resolution(hook, cw):
    # 30 one-second-resolution datapoints, 10 s apart, over the last 5 minutes.
    _put(
        cw,
        "AWS/Lambda",
        "Invocations",
        GREEN_API,
        [2] * 30,
        at=END - timedelta(minutes=5),
        step=timedelta(seconds=10),
        high_res=True,
    )
    for period in (10, 30, 60):
        assert (
            hook.metric_sum(
                "AWS/Lambda", "Invocations", GREEN_API, start=END - timedelta(minutes=5), end=END, period_seconds=period
            )
            == 60.0
        )
    # A 100 s sub-window at 10 s periods sees exactly 10 datapoints (end is exclusive).
    sub_start = END - timedelta(minutes=5) + timedelta(seconds=100)
    assert (
        hook.metric_sum(
            "AWS/Lambda",
            "Invocations",
            GREEN_API,
            start=sub_start,
            end=sub_start + timedelta(seconds=100),
            period_seconds=10,
        )
        == 20.0
    )


def test_metric_sum_paginates(hook, cw, monkeypatch):
    pages = [
        {"MetricDataResults": [{"Id": "m0", "Values": [1.0, 2.0]}], "NextToken": "t"},
        {"MetricDataResults": [{"Id": "m0", "Values": [4.0]}]},
    ]
    calls = []

    def fake_get_metric_data(**kwargs):
        calls.append(kwargs)
        return pages[len(calls) - 1]

    monkeypatch.setattr(hook.conn, "get_metric_data", fake_get_metric_data)
    assert hook.metric_sum("AWS/Lambda", "Invocations", GREEN_API, start=START, end=END) == 7.0
    assert calls[1]["NextToken"] == "t"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": END, "end": START}, "must be before end"),
        ({"start": START.replace(tzinfo=None)}, "timezone-aware"),
        ({"period_seconds": 45}, r"one of \(1, 5, 10, 30\) or a multiple of 60, got 45"),
        ({"period_seconds": 0}, "got 0"),
    ],
)
def test_metric_sum_bad_window(hook, kwargs, message):
    args = {"start": START, "end": END, **kwargs}
    with pytest.raises(MetricQueryError, match=message):
        hook.metric_sum("AWS/Lambda", "Invocations", GREEN_API, **args)


# -------------------------------------------------------------- error rate


def test_error_rate_sums_across_functions(hook, cw):
    _put(cw, "AWS/Lambda", "Invocations", GREEN_API, [100, 100])
    _put(cw, "AWS/Lambda", "Invocations", GREEN_WORKER, [50, 50])
    _put(cw, "AWS/Lambda", "Errors", GREEN_API, [3, 3])
    _put(cw, "AWS/Lambda", "Errors", GREEN_WORKER, [6])
    _put(cw, "AWS/Lambda", "Errors", {"FunctionName": "api", "Resource": "api:production-blue"}, [99])
    rate = hook.error_rate(
        ErrorRateQuery.lambda_aliases(["api", "worker"], "production-green"), start=START, end=END, min_requests=100
    )
    assert (rate.requests, rate.errors) == (300.0, 12.0)
    assert rate.rate_pct == pytest.approx(4.0)
    assert rate.enough_data is True
    assert (rate.start, rate.end) == (START, END)
    assert json.loads(json.dumps(rate.to_dict()))["rate_pct"] == pytest.approx(4.0)


def test_error_rate_no_data(hook):
    rate = hook.error_rate(ErrorRateQuery.api_gateway("orders-api"), start=START, end=END)
    assert rate == ErrorRate(0.0, 0.0, None, False, START, END)
    assert rate.to_dict()["rate_pct"] is None


def test_error_rate_below_min_requests(hook, cw):
    _put(cw, "AWS/ApiGateway", "Count", {"ApiName": "orders-api"}, [4])
    _put(cw, "AWS/ApiGateway", "5XXError", {"ApiName": "orders-api"}, [1])
    rate = hook.error_rate(ErrorRateQuery.api_gateway("orders-api"), start=START, end=END, min_requests=50)
    assert rate.rate_pct == pytest.approx(25.0)
    assert rate.enough_data is False
    assert hook.error_rate(ErrorRateQuery.api_gateway("orders-api"), start=START, end=END, min_requests=4).enough_data


def test_error_rate_bad_min_requests(hook):
    with pytest.raises(MetricQueryError, match="min_requests must be an int >= 0, got -1"):
        hook.error_rate(ErrorRateQuery.api_gateway("a"), start=START, end=END, min_requests=-1)


# ------------------------------------------------------------------ alarms


def _alarm(cw, name, state=None, reason="test"):
    cw.put_metric_alarm(
        AlarmName=name,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    if state:
        cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)


def test_alarm_states(hook, cw):
    _alarm(cw, "api-green-errors", "ALARM", "Threshold Crossed: 7 errors")
    _alarm(cw, "api-green-latency", "OK")
    _alarm(cw, "api-blue-errors", "ALARM")
    states = hook.alarm_states(["api-green-errors", "api-green-latency", "api-green-errors"])
    assert list(states) == ["api-green-errors", "api-green-latency"]
    err = states["api-green-errors"]
    assert isinstance(err, AlarmState)
    assert (err.state, err.reason) == ("ALARM", "Threshold Crossed: 7 errors")
    assert err.updated_at is not None
    assert states["api-green-latency"].state == "OK"
    assert [a.name for a in hook.alarms_in_alarm(["api-green-errors", "api-green-latency"])] == ["api-green-errors"]
    assert hook.alarms_in_alarm(["api-green-latency"]) == []


def test_alarm_states_includes_composite_alarms(hook, monkeypatch):
    # moto 5.2.5 does not implement PutCompositeAlarm, so feed DescribeAlarms' composite shape directly.
    seen = {}

    def describe_alarms(**kwargs):
        seen.update(kwargs)
        return {
            "MetricAlarms": [],
            "CompositeAlarms": [
                {"AlarmName": "api-green-critical", "StateValue": "ALARM", "StateReason": "child alarm"}
            ],
        }

    monkeypatch.setattr(hook.conn, "describe_alarms", describe_alarms)
    state = hook.alarm_states(["api-green-critical"])["api-green-critical"]
    assert (state.state, state.reason, state.updated_at) == ("ALARM", "child alarm", None)
    assert seen["AlarmTypes"] == ["MetricAlarm", "CompositeAlarm"]


def test_unknown_alarm_is_an_error(hook, cw):
    _alarm(cw, "api-green-errors", "OK")
    with pytest.raises(UnknownAlarmError, match=r"\['api-green-erors'\] do not exist.*api-green-errors"):
        hook.alarms_in_alarm(["api-green-errors", "api-green-erors"])


def test_unknown_alarm_without_permission_to_list_others(hook, cw, monkeypatch):
    """Allowed DescribeAlarms on the service's alarms only (the shipped IAM policy), no prefix listing."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    _alarm(cw, "api-green-errors", "OK")
    real = BaseClient._make_api_call

    def deny_prefix(client, operation, params):
        if operation == "DescribeAlarms" and "AlarmNamePrefix" in params:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, operation)
        return real(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", deny_prefix)
    with pytest.raises(UnknownAlarmError, match=r"\['api-green-erors'\] do not exist.*not listed \(no permission"):
        hook.alarms_in_alarm(["api-green-errors", "api-green-erors"])
    with pytest.raises(UnknownAlarmError, match="non-empty strings, got 'api-green-errors'"):
        hook.alarm_states("api-green-errors")

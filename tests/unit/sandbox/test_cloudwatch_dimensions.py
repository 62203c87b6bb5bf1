"""CloudWatch's exact dimension matching: a per-function query never counts the per-alias datapoints."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bluegreen_provider.sandbox import cloudwatch_rules
from bluegreen_provider.sandbox.alarms import AlarmEvaluator

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    cloudwatch_rules.install()
    with mock_aws():
        client = boto3.client("cloudwatch", region_name="us-east-1")
        put = [
            ({"FunctionName": "lego-api-moc"}, 10.0),
            ({"FunctionName": "lego-api-moc", "Resource": "lego-api-moc:production-blue"}, 6.0),
            ({"FunctionName": "lego-api-moc", "Resource": "lego-api-moc:production-green"}, 4.0),
        ]
        for dims, value in put:
            client.put_metric_data(
                Namespace="AWS/Lambda",
                MetricData=[
                    {
                        "MetricName": "Errors",
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                        "Timestamp": T0,
                        "Value": value,
                        "Unit": "Count",
                    }
                ],
            )
        yield client


def _stat(client: Any, dims: dict[str, str]) -> list[float]:
    points = client.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=T0 - timedelta(minutes=1),
        EndTime=T0 + timedelta(minutes=1),
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    return [p["Sum"] for p in points]


def test_get_metric_statistics_matches_the_dimension_set_exactly(cloudwatch: Any) -> None:
    assert _stat(cloudwatch, {"FunctionName": "lego-api-moc"}) == [10.0]
    assert _stat(cloudwatch, {"Resource": "lego-api-moc:production-green", "FunctionName": "lego-api-moc"}) == [4.0]
    assert _stat(cloudwatch, {"Resource": "lego-api-moc:production-green"}) == []


def test_get_metric_data_matches_the_dimension_set_exactly(cloudwatch: Any) -> None:
    result = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "fn",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Errors",
                        "Dimensions": [{"Name": "FunctionName", "Value": "lego-api-moc"}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=T0 - timedelta(minutes=1),
        EndTime=T0 + timedelta(minutes=1),
    )["MetricDataResults"]
    assert sum(result[0]["Values"]) == 10.0


def test_the_alarm_evaluator_counts_each_request_once(cloudwatch: Any) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName="lego-api-moc-errors",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": "lego-api-moc"}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=15,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    evaluator = AlarmEvaluator(lambda _: cloudwatch, ("lego-api-moc-errors",), clock=lambda: T0.timestamp() + 30)
    alarm = cloudwatch.describe_alarms(AlarmNames=["lego-api-moc-errors"])["MetricAlarms"][0]
    assert evaluator.datapoints(alarm, 60, 1, "Sum") == [10.0]  # not 20: the alias datapoints are other metrics
    assert evaluator.evaluate() == {"lego-api-moc-errors": "OK"}

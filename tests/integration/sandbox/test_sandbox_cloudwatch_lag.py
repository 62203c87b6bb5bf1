"""CloudWatch, live on the aws profile: period datapoints appear only after the lag; alarms count once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

PERIOD, LAG = 2, 4.0


def _alias_errors(cloudwatch, start: datetime, end: datetime, dims: dict[str, str]) -> dict[datetime, float]:
    result = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "e",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Invocations",
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    },
                    "Period": PERIOD,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=start,
        EndTime=end,
    )["MetricDataResults"][0]
    return dict(zip(result["Timestamps"], result["Values"], strict=True))


def test_datapoints_are_published_only_after_the_lag(aws_sandbox, wait_until) -> None:
    sandbox = aws_sandbox(metrics_period_seconds=PERIOD, metrics_lag_seconds=LAG, flush_seconds=0.25)
    cloudwatch = sandbox.clients()("cloudwatch")
    started = time.time()
    first_period = (int(started) // PERIOD + 1) * PERIOD  # the first whole period with traffic
    start = datetime.fromtimestamp(first_period, UTC)
    dims = {"FunctionName": "lego-api-moc", "Resource": "lego-api-moc:production-blue"}

    def published() -> bool:
        return start in _alias_errors(cloudwatch, start, start + timedelta(seconds=60), dims)

    wait_until(published, timeout=20, what="the first period's datapoint")
    seen = time.time()
    assert seen >= first_period + PERIOD + LAG - 0.05  # not before its period ended plus the lag
    assert seen <= first_period + PERIOD + LAG + 1.0  # and soon after (flush every 0.25 s)
    later = _alias_errors(cloudwatch, start, start + timedelta(seconds=60), dims)
    assert all(ts.timestamp() + PERIOD + LAG <= time.time() + 0.05 for ts in later)
    assert later[start] > 0


def test_per_function_metrics_and_alarms_count_each_request_once(aws_sandbox, set_sandbox_weights, wait_until) -> None:
    sandbox = aws_sandbox(metrics_period_seconds=PERIOD, metrics_lag_seconds=0.0, flush_seconds=0.25)
    lambda_ = sandbox.clients()("lambda")
    code = sandbox.release_zip("bad").read_bytes()
    lambda_.update_function_code(FunctionName="lego-api-moc", ZipFile=code)
    version = lambda_.publish_version(FunctionName="lego-api-moc")["Version"]
    lambda_.update_alias(FunctionName="lego-api-moc", Name="production-green", FunctionVersion=version)
    set_sandbox_weights(sandbox, 50, 50)
    wait_until(lambda: time.time() > sandbox.route53_changes()[-1]["insync_at"] + 3 * PERIOD, timeout=30)
    cloudwatch = sandbox.clients()("cloudwatch")
    end = datetime.fromtimestamp((int(time.time()) // PERIOD) * PERIOD, UTC)
    start = end - timedelta(seconds=2 * PERIOD)
    per_function = _alias_errors(cloudwatch, start, end, {"FunctionName": "lego-api-moc"})
    per_alias = [
        _alias_errors(cloudwatch, start, end, {"FunctionName": "lego-api-moc", "Resource": f"lego-api-moc:{a}"})
        for a in ("production-blue", "production-green")
    ]
    assert per_function and all(v > 0 for v in per_function.values())
    for ts, value in per_function.items():
        assert value == sum(alias.get(ts, 0.0) for alias in per_alias)  # one count per request, not two
    # The alarm the evaluator sets reads the same exact-dimension metric.
    alarm = cloudwatch.describe_alarms(AlarmNames=["lego-api-moc-errors"])["MetricAlarms"][0]
    assert alarm["Period"] == PERIOD

"""CloudWatch metrics hook: error rates for canary analysis and alarm states for rollback rules."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.exceptions import ClientError

from bluegreen_provider.hooks.retries import CLOUDWATCH_MAX_ATTEMPTS, StandardRetriesMixin

# CloudWatch accepts at most 500 queries per GetMetricData and 100 names per DescribeAlarms.
_MAX_QUERIES = 500
_MAX_ALARM_NAMES = 100
_HIGH_RES_PERIODS = (1, 5, 10, 30)


class MetricQueryError(ValueError):
    """A metric window, period or query CloudWatch would reject or silently misread."""


class UnknownAlarmError(ValueError):
    """An alarm name that does not exist; a typo must not silently disable a rollback rule."""


@dataclass(frozen=True)
class ErrorRateQuery:
    """What "requests" and "errors" are for one slot; each metric is summed across ``dimension_sets``."""

    namespace: str
    requests_metric: str
    errors_metric: str
    dimension_sets: tuple[dict[str, str], ...]

    def __post_init__(self) -> None:
        if not self.dimension_sets:
            raise MetricQueryError(f"ErrorRateQuery for {self.namespace!r} needs at least one dimension set")
        # Keep the instance immutable in practice and JSON-able: copy each dict, require str pairs.
        sets = []
        for dims in self.dimension_sets:
            if not dims or not all(isinstance(k, str) and isinstance(v, str) for k, v in dims.items()):
                raise MetricQueryError(f"Dimension set must be a non-empty str -> str mapping, got {dims!r}")
            sets.append(dict(dims))
        object.__setattr__(self, "dimension_sets", tuple(sets))

    @classmethod
    def lambda_aliases(cls, function_names: Sequence[str], alias: str) -> ErrorRateQuery:
        """Invocations/Errors of one alias across several functions (e.g. every API handler's ``green``)."""
        if isinstance(function_names, str) or not function_names:
            raise MetricQueryError(f"function_names must be a non-empty list of names, got {function_names!r}")
        return cls(
            namespace="AWS/Lambda",
            requests_metric="Invocations",
            errors_metric="Errors",
            dimension_sets=tuple({"FunctionName": f, "Resource": f"{f}:{alias}"} for f in function_names),
        )

    @classmethod
    def lambda_versions(cls, versions: Mapping[str, str], alias: str) -> ErrorRateQuery:
        """Invocations/Errors of the given version of each function, invoked through ``alias`` (weighted routing).

        Lambda publishes alias invocations per executed version too (``ExecutedVersion`` with
        ``FunctionName`` and ``Resource = fn:alias``): with one alias routing between two versions,
        this counts only the requests one version served.
        """
        if not isinstance(versions, Mapping) or not versions:
            raise MetricQueryError(f"versions must be a non-empty mapping of function -> version, got {versions!r}")
        return cls(
            namespace="AWS/Lambda",
            requests_metric="Invocations",
            errors_metric="Errors",
            dimension_sets=tuple(
                {"FunctionName": f, "Resource": f"{f}:{alias}", "ExecutedVersion": v} for f, v in versions.items()
            ),
        )

    @classmethod
    def api_gateway(cls, api_name: str, stage: str | None = None) -> ErrorRateQuery:
        """Count/5XXError of a REST API (optionally one stage); 4XX are client errors, not ours."""
        dims = {"ApiName": api_name} if stage is None else {"ApiName": api_name, "Stage": stage}
        return cls(
            namespace="AWS/ApiGateway", requests_metric="Count", errors_metric="5XXError", dimension_sets=(dims,)
        )

    def to_dict(self) -> dict:
        return {
            "namespace": self.namespace,
            "requests_metric": self.requests_metric,
            "errors_metric": self.errors_metric,
            "dimension_sets": [dict(d) for d in self.dimension_sets],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ErrorRateQuery:
        expected = {"namespace", "requests_metric", "errors_metric", "dimension_sets"}
        if set(d) != expected:
            raise MetricQueryError(f"ErrorRateQuery dict needs keys {sorted(expected)}, got {sorted(d)}")
        return cls(
            namespace=d["namespace"],
            requests_metric=d["requests_metric"],
            errors_metric=d["errors_metric"],
            dimension_sets=tuple(dict(x) for x in d["dimension_sets"]),
        )


@dataclass(frozen=True)
class ErrorRate:
    """Requests and errors summed over a window; ``rate_pct`` is None when there were no requests."""

    requests: float
    errors: float
    rate_pct: float | None
    enough_data: bool
    start: datetime
    end: datetime
    # Start of the newest period holding a datapoint: CloudWatch delivers late, so a window's end
    # may not have been judged yet.
    last_datapoint_at: datetime | None = None

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rate_pct": self.rate_pct,
            "enough_data": self.enough_data,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "last_datapoint_at": self.last_datapoint_at.isoformat() if self.last_datapoint_at else None,
        }


@dataclass(frozen=True)
class AlarmState:
    """State of one metric or composite alarm: ``OK``, ``ALARM`` or ``INSUFFICIENT_DATA``."""

    name: str
    state: str
    reason: str
    updated_at: datetime | None
    # When the alarm entered its current state: one ALARM episode keeps one value. CloudWatch's
    # StateTransitionedTimestamp where given, else StateUpdatedTimestamp.
    since: datetime | None = None


class CloudWatchMetricsHook(StandardRetriesMixin, AwsBaseHook):
    """
    Thin wrapper around :external+boto3:py:class:`boto3.client("cloudwatch") <CloudWatch.Client>`.

    The amazon provider has no metrics hook (only ``AwsLogsHook``). Rates are computed here from
    plain ``Sum`` statistics rather than metric math, so the same code runs against moto. Calls use
    botocore ``standard`` retries with :data:`~bluegreen_provider.hooks.retries.CLOUDWATCH_MAX_ATTEMPTS`
    attempts; a connection's ``config_kwargs`` override them.

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.
    """

    max_attempts = CLOUDWATCH_MAX_ATTEMPTS

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "cloudwatch"
        super().__init__(*args, **kwargs)

    @staticmethod
    def _check_window(start: datetime, end: datetime, period_seconds: int) -> None:
        if start.tzinfo is None or end.tzinfo is None:
            raise MetricQueryError(f"start and end must be timezone-aware, got {start!r}, {end!r}")
        if start >= end:
            raise MetricQueryError(f"start {start.isoformat()} must be before end {end.isoformat()}")
        if (
            isinstance(period_seconds, bool)
            or not isinstance(period_seconds, int)
            or not (period_seconds in _HIGH_RES_PERIODS or (period_seconds > 0 and period_seconds % 60 == 0))
        ):
            raise MetricQueryError(
                f"period_seconds must be one of {_HIGH_RES_PERIODS} or a multiple of 60, got {period_seconds!r}"
            )

    def _sums(
        self,
        metrics: Sequence[tuple[str, str, Mapping[str, str]]],
        *,
        start: datetime,
        end: datetime,
        period_seconds: int,
    ) -> list[float]:
        """Sum each (namespace, metric, dimensions) over the window, batching into few GetMetricData calls."""
        return self._sums_and_latest(metrics, start=start, end=end, period_seconds=period_seconds)[0]

    def _sums_and_latest(
        self,
        metrics: Sequence[tuple[str, str, Mapping[str, str]]],
        *,
        start: datetime,
        end: datetime,
        period_seconds: int,
    ) -> tuple[list[float], list[datetime | None]]:
        """Sums as :meth:`_sums`, and the newest datapoint timestamp of each metric."""
        self._check_window(start, end, period_seconds)
        totals = [0.0] * len(metrics)
        latest: list[datetime | None] = [None] * len(metrics)
        paginator = self.conn.get_paginator("get_metric_data")
        for offset in range(0, len(metrics), _MAX_QUERIES):
            batch = metrics[offset : offset + _MAX_QUERIES]
            queries = [
                {
                    "Id": f"m{offset + i}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                        },
                        "Period": period_seconds,
                        "Stat": "Sum",
                    },
                    "ReturnData": True,
                }
                for i, (namespace, name, dims) in enumerate(batch)
            ]
            for page in paginator.paginate(MetricDataQueries=queries, StartTime=start, EndTime=end):
                for result in page["MetricDataResults"]:
                    index = int(result["Id"][1:])
                    totals[index] += float(sum(result["Values"]))
                    stamps = [t for t in result.get("Timestamps", []) if latest[index] is None or t > latest[index]]
                    if stamps:
                        latest[index] = max(stamps)
        return totals, latest

    def metric_sum(
        self,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, str],
        *,
        start: datetime,
        end: datetime,
        period_seconds: int = 60,
    ) -> float:
        """
        Sum of one metric over ``[start, end)``; 0.0 when CloudWatch has no datapoints.

        .. seealso::
            - :external+boto3:py:meth:`CloudWatch.Client.get_metric_data`

        :param namespace: e.g. ``"AWS/Lambda"``.
        :param metric_name: e.g. ``"Errors"``.
        :param dimensions: exact dimension set of the metric (CloudWatch does not aggregate subsets).
        :param start: timezone-aware window start.
        :param end: timezone-aware window end.
        :param period_seconds: 1, 5, 10, 30 (high-resolution metrics) or a multiple of 60.
        """
        metric = (namespace, metric_name, dimensions)
        return self._sums([metric], start=start, end=end, period_seconds=period_seconds)[0]

    def error_rate(
        self,
        query: ErrorRateQuery,
        *,
        start: datetime,
        end: datetime,
        period_seconds: int = 60,
        min_requests: int = 1,
    ) -> ErrorRate:
        """
        Error percentage of one slot over a window, in a single batched GetMetricData.

        :param query: which metrics count as requests and errors.
        :param start: timezone-aware window start.
        :param end: timezone-aware window end.
        :param period_seconds: aggregation period; the window total does not depend on it.
        :param min_requests: below this many requests the rate is reported but ``enough_data`` is False.
        """
        return self.error_rates(
            [query], start=start, end=end, period_seconds=period_seconds, min_requests=min_requests
        )[0]

    def error_rates(
        self,
        queries: Sequence[ErrorRateQuery],
        *,
        start: datetime,
        end: datetime,
        period_seconds: int = 60,
        min_requests: int = 1,
    ) -> list[ErrorRate]:
        """
        Error percentages of several slots over the same window, in one batched GetMetricData.

        Comparing the candidate with live needs both read over exactly the same window.

        :param queries: one query per slot.
        :param start: timezone-aware window start.
        :param end: timezone-aware window end.
        :param period_seconds: aggregation period; the window total does not depend on it.
        :param min_requests: below this many requests a rate is reported but ``enough_data`` is False.
        """
        if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 0:
            raise MetricQueryError(f"min_requests must be an int >= 0, got {min_requests!r}")
        metrics: list[tuple[str, str, Mapping[str, str]]] = []
        for query in queries:
            metrics += [(query.namespace, query.requests_metric, d) for d in query.dimension_sets]
            metrics += [(query.namespace, query.errors_metric, d) for d in query.dimension_sets]
        sums, latest = self._sums_and_latest(metrics, start=start, end=end, period_seconds=period_seconds)
        rates, offset = [], 0
        for query in queries:
            n = len(query.dimension_sets)
            requests, errors = sum(sums[offset : offset + n]), sum(sums[offset + n : offset + 2 * n])
            stamps = [t for t in latest[offset : offset + 2 * n] if t is not None]
            offset += 2 * n
            rates.append(
                ErrorRate(
                    requests=requests,
                    errors=errors,
                    rate_pct=errors / requests * 100 if requests > 0 else None,
                    enough_data=requests >= min_requests,
                    start=start,
                    end=end,
                    last_datapoint_at=max(stamps) if stamps else None,
                )
            )
        return rates

    def alarm_states(self, alarm_names: Sequence[str]) -> dict[str, AlarmState]:
        """
        State of each named metric or composite alarm.

        :param alarm_names: alarm names; every one must exist.
        :raises UnknownAlarmError: naming each missing alarm and close matches that exist.
        """
        if isinstance(alarm_names, str) or not all(isinstance(n, str) and n for n in alarm_names):
            raise UnknownAlarmError(f"alarm_names must be a list of non-empty strings, got {alarm_names!r}")
        names = list(dict.fromkeys(alarm_names))
        found: dict[str, AlarmState] = {}
        paginator = self.conn.get_paginator("describe_alarms")
        for offset in range(0, len(names), _MAX_ALARM_NAMES):
            for page in paginator.paginate(
                AlarmNames=names[offset : offset + _MAX_ALARM_NAMES],
                AlarmTypes=["MetricAlarm", "CompositeAlarm"],
            ):
                for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                    found[alarm["AlarmName"]] = AlarmState(
                        name=alarm["AlarmName"],
                        state=alarm["StateValue"],
                        reason=alarm.get("StateReason", ""),
                        updated_at=alarm.get("StateUpdatedTimestamp"),
                        since=alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp"),
                    )
        missing = [n for n in names if n not in found]
        if missing:
            hints = {n: self._similar_alarms(n) for n in missing}
            raise UnknownAlarmError(
                f"CloudWatch alarm(s) {missing} do not exist; found {sorted(found)}; similar existing: {hints}"
            )
        return {n: found[n] for n in names}

    def _similar_alarms(self, name: str) -> list[str] | str:
        """A few existing alarm names sharing a prefix with ``name``, for the error message.

        A connection allowed ``DescribeAlarms`` on the service's alarms only (the shipped IAM policy)
        may not list others by prefix: the hint then says so instead of hiding the missing alarm.
        """
        try:
            response = self.conn.describe_alarms(
                AlarmNamePrefix=name[:3], AlarmTypes=["MetricAlarm", "CompositeAlarm"], MaxRecords=100
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("AccessDenied", "AccessDeniedException"):
                raise
            return "not listed (no permission to describe other alarms)"
        existing = [a["AlarmName"] for a in response.get("MetricAlarms", []) + response.get("CompositeAlarms", [])]
        return difflib.get_close_matches(name, existing, n=3, cutoff=0.5)

    def alarms_in_alarm(self, alarm_names: Sequence[str]) -> list[AlarmState]:
        """
        The named alarms currently in ``ALARM`` state (an empty list means none fired).

        :param alarm_names: alarm names; every one must exist.
        """
        return [s for s in self.alarm_states(alarm_names).values() if s.state == "ALARM"]

"""CloudWatch alarm evaluation, which moto does not do: alarms there only change when told to.

After each flush the evaluator reads each seeded alarm's own definition (metric, statistic, period,
threshold, comparison, missing-data treatment), asks moto for that metric over the alarm's window and
sets the state CloudWatch would reach. An alarm forced by hand (``force``) keeps its forced state until
``release``, so a test or a demo can trip a rollback without producing errors.

Metrics are read with ``GetMetricData``, which (like CloudWatch) matches the alarm's dimension set
exactly. With lagged metrics (``lookback_seconds``, the ``aws`` profile) the evaluator looks back over
an evaluation range longer than the alarm's window and judges the latest ``EvaluationPeriods``
datapoints that have been published, as CloudWatch does when recent data is late.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bluegreen_provider.sandbox.clients import Clients

log = logging.getLogger(__name__)

STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


class UnknownAlarmError(KeyError):
    """The alarm is not one the sandbox evaluates."""


class AlarmEvaluator:
    """Keeps the seeded alarms' states in line with the published metrics, except forced ones."""

    def __init__(
        self,
        clients: Clients,
        alarm_names: tuple[str, ...],
        clock: Callable[[], float] = time.time,
        *,
        lookback_seconds: float = 0.0,
    ):
        self._clients = clients
        self._names = alarm_names
        self._clock = clock
        self._lookback = lookback_seconds
        # Held across read-evaluate-set so a force cannot be overwritten by an evaluation in flight.
        self._lock = threading.RLock()
        self._forced: dict[str, str] = {}

    @property
    def forced(self) -> dict[str, str]:
        with self._lock:
            return dict(self._forced)

    def force(self, name: str, state: str = "ALARM", reason: str | None = None) -> None:
        if name not in self._names:
            raise UnknownAlarmError(name)
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        with self._lock:
            self._forced[name] = state
            self._clients("cloudwatch").set_alarm_state(
                AlarmName=name, StateValue=state, StateReason=reason or "Forced by the bluegreen sandbox"
            )
        log.info("alarm %s forced to %s", name, state)

    def release(self, name: str) -> None:
        """Hand the alarm back to evaluation, and evaluate it at once rather than at the next flush."""
        if name not in self._names:
            raise UnknownAlarmError(name)
        with self._lock:
            self._forced.pop(name, None)
            self.evaluate([name])
        log.info("alarm %s released", name)

    def states(self) -> dict[str, str]:
        alarms = self._clients("cloudwatch").describe_alarms(AlarmNames=list(self._names))["MetricAlarms"]
        return {alarm["AlarmName"]: alarm["StateValue"] for alarm in alarms}

    def evaluate(self, names: list[str] | None = None) -> dict[str, str]:
        """Evaluate the given (default: all) alarms now; returns the resulting states."""
        cloudwatch = self._clients("cloudwatch")
        result: dict[str, str] = {}
        with self._lock:
            alarms = cloudwatch.describe_alarms(AlarmNames=list(names or self._names))["MetricAlarms"]
            for alarm in alarms:
                name = alarm["AlarmName"]
                if name in self._forced:
                    result[name] = alarm["StateValue"]
                    continue
                state, reason, data = self._decide(alarm)
                if state is not None and state != alarm["StateValue"]:
                    cloudwatch.set_alarm_state(
                        AlarmName=name, StateValue=state, StateReason=reason, StateReasonData=json.dumps(data)
                    )
                    log.info("alarm %s: %s -> %s (%s)", name, alarm["StateValue"], state, reason)
                result[name] = state or alarm["StateValue"]
        return result

    def datapoints(self, alarm: dict[str, Any], period: int, periods: int, statistic: str) -> list[float]:
        """The values the alarm is judged on, oldest first (exact dimension match)."""
        now = self._clock()
        if self._lookback > 0:
            # Period-aligned windows reaching back over the publication lag; the latest published win.
            end_s = math.ceil(now / period) * period
            span = period * (periods + math.ceil(self._lookback / period) + 1)
        else:
            end_s = math.floor(now) + 1
            span = period * periods
        end = datetime.fromtimestamp(end_s, tz=UTC)
        start = end - timedelta(seconds=span)
        result = self._clients("cloudwatch").get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": alarm["Namespace"],
                            "MetricName": alarm["MetricName"],
                            "Dimensions": alarm.get("Dimensions", []),
                        },
                        "Period": period,
                        "Stat": statistic,
                    },
                }
            ],
            StartTime=start,
            EndTime=end,
            ScanBy="TimestampAscending",
        )["MetricDataResults"][0]
        points = sorted(zip(result["Timestamps"], result["Values"], strict=True))
        return [float(v) for _, v in points][-periods:]

    def _decide(self, alarm: dict[str, Any]) -> tuple[str | None, str, dict[str, Any]]:
        """The state CloudWatch would set, or None when missing data is to be ignored."""
        period = int(alarm["Period"])
        periods = int(alarm["EvaluationPeriods"])
        needed = int(alarm.get("DatapointsToAlarm") or periods)
        statistic = alarm["Statistic"]
        values = self.datapoints(alarm, period, periods, statistic)
        compare, words = _COMPARISONS[alarm["ComparisonOperator"]]
        threshold = float(alarm["Threshold"])
        data = {"period": period, "statistic": statistic, "threshold": threshold, "recentDatapoints": values}
        if not values:
            treat = alarm.get("TreatMissingData", "missing")
            if treat == "ignore":
                return None, "", data
            if treat == "breaching":
                return "ALARM", "Threshold Crossed: no datapoints were received (treated as breaching).", data
            if treat == "notBreaching":
                return "OK", "Threshold Crossed: no datapoints were received (treated as not breaching).", data
            return "INSUFFICIENT_DATA", "Insufficient Data: no datapoints were received.", data
        breaching = [v for v in values if compare(v, threshold)]
        shown = ", ".join(f"{v:g}" for v in values)
        if len(breaching) >= needed:
            reason = (
                f"Threshold Crossed: {len(breaching)} out of the last {len(values)} datapoints [{shown}] "
                f"were {words} the threshold ({threshold:g})."
            )
            return "ALARM", reason, data
        reason = (
            f"Threshold Crossed: {len(values) - len(breaching)} out of the last {len(values)} datapoints "
            f"[{shown}] were not {words} the threshold ({threshold:g})."
        )
        return "OK", reason, data

"""Traffic counters and their publication as the CloudWatch metrics AWS itself would emit.

Lambda: ``Invocations``/``Errors`` per function and per function alias (``Resource = fn:alias``).
With a live alias (the lambda_alias router: every request invokes ``fn:production``, whose routing
picks the version) the alias's datapoints are published per executed version too, as Lambda does
for alias invocations: ``FunctionName``, ``Resource = fn:alias`` and ``ExecutedVersion``.
API Gateway: ``Count``/``5XXError`` per slot (``ApiName = lego-api-blue|green``) and in total
(``ApiName = lego-api``). A slot without traffic gets only ``Count = 0``: its error metrics stay
missing, so "no data" remains distinguishable from "no errors".

Two publication modes. Without a period (the ``fast`` profile) each flush's bucket is one datapoint,
stamped with the bucket's start second and visible at once. With ``period`` (the ``aws`` profile, 60 s
as Lambda and API Gateway publish) requests are counted into period-aligned datapoints that are
published only ``lag`` seconds after their period ends, as AWS's own metrics arrive minutes late.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bluegreen_provider.sandbox.clients import Clients
from bluegreen_provider.sandbox.served import ServedSeries
from bluegreen_provider.sandbox.world import API_NAME, FUNCTIONS, SLOTS, alias_name, slot_api_name

_MAX_DATUMS_PER_CALL = 20


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0  # 5XX responses
    function_errors: int = 0  # Lambda errors (the handler raised or its code is unknown)

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.function_errors += other.function_errors


@dataclass
class Bucket:
    """Requests counted since the last flush, keyed by (slot, function)."""

    started: float
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)
    # (function, executed version) of requests through a live alias
    versions: dict[tuple[str, str], Tally] = field(default_factory=dict)


class PeriodAggregator:
    """Requests counted into period-aligned datapoints, released ``lag`` seconds after each period ends."""

    def __init__(self, period: float, lag: float) -> None:
        if period <= 0 or lag < 0:
            raise ValueError("period must be > 0 and lag >= 0")
        self.period = period
        self.lag = lag
        self._lock = threading.Lock()
        self._open: dict[float, Bucket] = {}

    def start_of(self, at: float) -> float:
        return math.floor(at / self.period) * self.period

    def add(self, slot: str, function: str, tally: Tally, at: float, version: str | None = None) -> None:
        start = self.start_of(at)
        with self._lock:
            bucket = self._open.setdefault(start, Bucket(start))
            bucket.tallies.setdefault((slot, function), Tally()).add(tally)
            if version is not None:
                bucket.versions.setdefault((function, version), Tally()).add(tally)

    def due(self, now: float) -> list[Bucket]:
        """Datapoints whose period ended at least ``lag`` ago, oldest first; each is handed out once."""
        with self._lock:
            ready = sorted(s for s in self._open if s + self.period + self.lag <= now)
            return [self._open.pop(s) for s in ready]


class TrafficCounters:
    """Cumulative totals for ``stats()``, the current bucket for the next flush, per-second served counts
    and, with a metrics period, the period datapoints waiting to be published."""

    def __init__(
        self, now: float, *, aggregator: PeriodAggregator | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str], Tally] = {}
        self._releases: dict[tuple[str, str], str] = {}
        self._bucket = Bucket(now)
        self._clock = clock
        self.aggregator = aggregator
        self.served = ServedSeries(clock)

    def record(
        self, slot: str, function: str, *, status: int, function_error: bool, release: str, version: str | None = None
    ) -> None:
        """Count one request; ``version`` is the version a live alias executed (None: a slot alias served it)."""
        tally = Tally(1, int(status >= 500), int(function_error))
        now = self._clock()
        with self._lock:
            self._totals.setdefault((slot, function), Tally()).add(tally)
            self._bucket.tallies.setdefault((slot, function), Tally()).add(tally)
            if version is not None:
                self._bucket.versions.setdefault((function, version), Tally()).add(tally)
            self._releases[(slot, function)] = release
        if self.aggregator is not None:
            self.aggregator.add(slot, function, tally, now, version)
        self.served.record(slot, failed=status >= 500, at=now)

    def take_bucket(self, now: float) -> Bucket:
        with self._lock:
            bucket, self._bucket = self._bucket, Bucket(now)
        return bucket

    def snapshot(self) -> dict[str, Any]:
        """Per slot: requests, errors, function errors, and the same per function with its last release."""
        with self._lock:
            totals = {key: Tally(t.requests, t.errors, t.function_errors) for key, t in self._totals.items()}
            releases = dict(self._releases)
        result: dict[str, Any] = {}
        for slot in SLOTS:
            slot_total = Tally()
            functions: dict[str, Any] = {}
            for function in FUNCTIONS:
                tally = totals.get((slot, function), Tally())
                slot_total.add(tally)
                functions[function] = {
                    "requests": tally.requests,
                    "errors": tally.errors,
                    "function_errors": tally.function_errors,
                    "release": releases.get((slot, function)),
                }
            result[slot] = {
                "requests": slot_total.requests,
                "errors": slot_total.errors,
                "function_errors": slot_total.function_errors,
                "functions": functions,
            }
        return result


def _make_datum(name: str, dims: dict[str, str], value: float, timestamp: datetime, resolution: int) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
        "Timestamp": timestamp,
        "Value": float(value),
        "Unit": "Count",
        "StorageResolution": resolution,
    }


def metric_data(
    bucket: Bucket, *, resolution: int = 1, live_alias: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The bucket as put_metric_data payloads per namespace, stamped with the bucket's start second.

    :param live_alias: requests invoked this alias (its routing picked the version): its datapoints
        are per alias and per executed version, not per slot alias.
    """
    ts = datetime.fromtimestamp(int(bucket.started), tz=UTC)

    def _datum(name: str, dims: dict[str, str], value: float, timestamp: datetime) -> dict[str, Any]:
        return _make_datum(name, dims, value, timestamp, resolution)

    lambda_data: list[dict[str, Any]] = []
    gateway_data: list[dict[str, Any]] = []
    total = Tally()
    per_function = {function: Tally() for function in FUNCTIONS}
    for slot in SLOTS:
        slot_total = Tally()
        for function in FUNCTIONS:
            tally = bucket.tallies.get((slot, function))
            if tally is None or tally.requests == 0:
                continue
            slot_total.add(tally)
            per_function[function].add(tally)
            if live_alias is not None:
                continue  # published per alias and executed version below
            dims = {"FunctionName": function, "Resource": f"{function}:{alias_name(slot)}"}
            lambda_data.append(_datum("Invocations", dims, tally.requests, ts))
            lambda_data.append(_datum("Errors", dims, tally.function_errors, ts))
        total.add(slot_total)
        gateway_data.append(_datum("Count", {"ApiName": slot_api_name(slot)}, slot_total.requests, ts))
        if slot_total.requests:
            gateway_data.append(_datum("5XXError", {"ApiName": slot_api_name(slot)}, slot_total.errors, ts))
    if live_alias is not None:
        per_alias = {function: Tally() for function in FUNCTIONS}
        for (function, version), tally in sorted(bucket.versions.items()):
            if tally.requests == 0:
                continue
            per_alias[function].add(tally)
            dims = {"FunctionName": function, "Resource": f"{function}:{live_alias}", "ExecutedVersion": version}
            lambda_data.append(_datum("Invocations", dims, tally.requests, ts))
            lambda_data.append(_datum("Errors", dims, tally.function_errors, ts))
        for function, tally in per_alias.items():
            if tally.requests:
                dims = {"FunctionName": function, "Resource": f"{function}:{live_alias}"}
                lambda_data.append(_datum("Invocations", dims, tally.requests, ts))
                lambda_data.append(_datum("Errors", dims, tally.function_errors, ts))
    for function, tally in per_function.items():
        if tally.requests:
            lambda_data.append(_datum("Invocations", {"FunctionName": function}, tally.requests, ts))
            lambda_data.append(_datum("Errors", {"FunctionName": function}, tally.function_errors, ts))
    gateway_data.append(_datum("Count", {"ApiName": API_NAME}, total.requests, ts))
    if total.requests:
        gateway_data.append(_datum("5XXError", {"ApiName": API_NAME}, total.errors, ts))
    return {"AWS/Lambda": lambda_data, "AWS/ApiGateway": gateway_data}


def publish(clients: Clients, bucket: Bucket, *, resolution: int = 1, live_alias: str | None = None) -> int:
    """Send the bucket to CloudWatch; returns the number of data points written."""
    cloudwatch = clients("cloudwatch")
    written = 0
    for namespace, data in metric_data(bucket, resolution=resolution, live_alias=live_alias).items():
        for start in range(0, len(data), _MAX_DATUMS_PER_CALL):
            chunk = data[start : start + _MAX_DATUMS_PER_CALL]
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=chunk)
            written += len(chunk)
    return written

"""Traffic counters and their publication as the CloudWatch metrics AWS itself would emit.

Lambda: ``Invocations``/``Errors`` per function and per function alias (``Resource = fn:alias``).
API Gateway: ``Count``/``5XXError`` per slot (``ApiName = lego-api-blue|green``) and in total
(``ApiName = lego-api``). A slot without traffic gets only ``Count = 0``: its error metrics stay
missing, so "no data" remains distinguishable from "no errors".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bluegreen_provider.sandbox.clients import Clients
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


class TrafficCounters:
    """Cumulative totals for ``stats()`` plus the current bucket for the next flush."""

    def __init__(self, now: float) -> None:
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str], Tally] = {}
        self._releases: dict[tuple[str, str], str] = {}
        self._bucket = Bucket(now)

    def record(self, slot: str, function: str, *, status: int, function_error: bool, release: str) -> None:
        tally = Tally(1, int(status >= 500), int(function_error))
        with self._lock:
            self._totals.setdefault((slot, function), Tally()).add(tally)
            self._bucket.tallies.setdefault((slot, function), Tally()).add(tally)
            self._releases[(slot, function)] = release

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


def _datum(name: str, dims: dict[str, str], value: float, timestamp: datetime) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
        "Timestamp": timestamp,
        "Value": float(value),
        "Unit": "Count",
        "StorageResolution": 1,
    }


def metric_data(bucket: Bucket) -> dict[str, list[dict[str, Any]]]:
    """The bucket as put_metric_data payloads per namespace, stamped with the bucket's start second."""
    ts = datetime.fromtimestamp(int(bucket.started), tz=UTC)
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
            dims = {"FunctionName": function, "Resource": f"{function}:{alias_name(slot)}"}
            lambda_data.append(_datum("Invocations", dims, tally.requests, ts))
            lambda_data.append(_datum("Errors", dims, tally.function_errors, ts))
        total.add(slot_total)
        gateway_data.append(_datum("Count", {"ApiName": slot_api_name(slot)}, slot_total.requests, ts))
        if slot_total.requests:
            gateway_data.append(_datum("5XXError", {"ApiName": slot_api_name(slot)}, slot_total.errors, ts))
    for function, tally in per_function.items():
        if tally.requests:
            lambda_data.append(_datum("Invocations", {"FunctionName": function}, tally.requests, ts))
            lambda_data.append(_datum("Errors", {"FunctionName": function}, tally.function_errors, ts))
    gateway_data.append(_datum("Count", {"ApiName": API_NAME}, total.requests, ts))
    if total.requests:
        gateway_data.append(_datum("5XXError", {"ApiName": API_NAME}, total.errors, ts))
    return {"AWS/Lambda": lambda_data, "AWS/ApiGateway": gateway_data}


def publish(clients: Clients, bucket: Bucket) -> int:
    """Send the bucket to CloudWatch; returns the number of data points written."""
    cloudwatch = clients("cloudwatch")
    written = 0
    for namespace, data in metric_data(bucket).items():
        for start in range(0, len(data), _MAX_DATUMS_PER_CALL):
            chunk = data[start : start + _MAX_DATUMS_PER_CALL]
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=chunk)
            written += len(chunk)
    return written

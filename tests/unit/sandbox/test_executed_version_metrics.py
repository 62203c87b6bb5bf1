"""Requests through a live alias are published as Lambda publishes alias invocations: per function,
per alias (``Resource = fn:alias``) and per executed version (``ExecutedVersion``), never per slot alias."""

from __future__ import annotations

from bluegreen_provider.sandbox.metrics import PeriodAggregator, TrafficCounters, metric_data
from bluegreen_provider.sandbox.world import FUNCTIONS

FN = FUNCTIONS[0]


def _points(data: dict, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted((d["Name"], d["Value"]) for d in p["Dimensions"])): p["Value"]
        for p in data["AWS/Lambda"]
        if p["MetricName"] == name
    }


def test_live_alias_requests_are_published_per_executed_version() -> None:
    counters = TrafficCounters(0.0, clock=lambda: 1.0)
    for _ in range(9):
        counters.record("blue", FN, status=200, function_error=False, release="v1", version="1")
    counters.record("green", FN, status=502, function_error=True, release="bad", version="2")
    data = metric_data(counters.take_bucket(2.0), live_alias="production")
    invocations, errors = _points(data, "Invocations"), _points(data, "Errors")
    per_version = {
        (("ExecutedVersion", "1"), ("FunctionName", FN), ("Resource", f"{FN}:production")): 9.0,
        (("ExecutedVersion", "2"), ("FunctionName", FN), ("Resource", f"{FN}:production")): 1.0,
    }
    assert invocations == {
        **per_version,
        (("FunctionName", FN), ("Resource", f"{FN}:production")): 10.0,
        (("FunctionName", FN),): 10.0,
    }
    assert errors[(("ExecutedVersion", "2"), ("FunctionName", FN), ("Resource", f"{FN}:production"))] == 1.0
    assert errors[(("ExecutedVersion", "1"), ("FunctionName", FN), ("Resource", f"{FN}:production"))] == 0.0
    assert not [k for k in invocations if ("Resource", f"{FN}:production-green") in k]


def test_period_datapoints_keep_the_executed_version() -> None:
    aggregator = PeriodAggregator(60, 0)
    counters = TrafficCounters(0.0, aggregator=aggregator, clock=lambda: 61.0)
    counters.record("green", FN, status=200, function_error=False, release="v2", version="2")
    (due,) = aggregator.due(200.0)
    assert due.versions[(FN, "2")].requests == 1


def test_without_a_live_alias_the_slot_aliases_are_published_as_before() -> None:
    counters = TrafficCounters(0.0, clock=lambda: 1.0)
    counters.record("green", FN, status=200, function_error=False, release="v2")
    invocations = _points(metric_data(counters.take_bucket(2.0)), "Invocations")
    assert invocations == {
        (("FunctionName", FN), ("Resource", f"{FN}:production-green")): 1.0,
        (("FunctionName", FN),): 1.0,
    }

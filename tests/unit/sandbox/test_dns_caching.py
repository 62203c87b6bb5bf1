"""DNS caching clients: each client keeps one weighted answer for the TTL; served counts per second."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bluegreen_provider.sandbox.dns import ResolverPopulation
from bluegreen_provider.sandbox.route53_rules import AppliedChange
from bluegreen_provider.sandbox.served import ServedSeries
from bluegreen_provider.sandbox.world import weighted_record

ZONE = "Z1"


class _Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _History:
    def __init__(self) -> None:
        self.changes: list[AppliedChange] = []

    def set(self, at: float, blue: int, green: int) -> None:
        records = (weighted_record("blue", blue), weighted_record("green", green))
        self.changes.append(AppliedChange(f"C{len(self.changes)}", ZONE, at, at, "", records))

    def zone(self, zone_id: str) -> list[AppliedChange]:
        return list(self.changes)


def _population(clock: _Clock, history: _History, ttl: float = 60, clients: int = 200) -> ResolverPopulation:
    return ResolverPopulation(
        ZONE, clients=clients, ttl_seconds=ttl, seed=7, fallback=dict, history=history, clock=clock
    )


def test_clients_keep_their_cached_slot_until_the_ttl_expires() -> None:
    clock, history = _Clock(0), _History()
    history.set(0, 100, 0)
    population = _population(clock, history, ttl=60)
    rng = random.Random(1)
    for _ in range(2000):
        assert population.pick(rng)[1] == "blue"
    history.set(10, 0, 100)  # instant propagation, so only the caches hold blue
    clock.now = 59.9
    assert {population.pick(rng)[1] for _ in range(2000)} == {"blue"}
    clock.now = 60.0
    assert {population.pick(rng)[1] for _ in range(2000)} == {"green"}


def test_after_a_shift_to_zero_requests_reach_the_old_slot_until_the_last_cache_expires() -> None:
    clock, history = _Clock(0), _History()
    history.set(0, 100, 0)
    population = _population(clock, history, ttl=60)
    rng = random.Random(2)
    last_blue = None
    for step in range(0, 1500):  # 15 s of warm-up, then a shift at t=15, watched for two minutes
        clock.now = step * 0.1
        if step == 150:
            history.set(15, 0, 100)
        for _ in range(4):
            if population.pick(rng)[1] == "blue":
                last_blue = clock.now
    assert last_blue is not None
    assert 55 <= last_blue - 15 <= 60  # the last cache filled before the shift expires one TTL after it


def test_one_cached_answer_per_client_follows_the_weights_across_clients() -> None:
    clock, history = _Clock(0), _History()
    history.set(0, 90, 10)
    population = _population(clock, history, ttl=60, clients=5000)
    rng = random.Random(3)
    slots = Counter(population.pick(rng)[1] for _ in range(20000))
    assert slots["green"] / sum(slots.values()) == pytest.approx(0.10, abs=0.02)


def test_served_series_counts_per_second_and_keeps_the_exact_last_request() -> None:
    clock = _Clock(100.0)
    served = ServedSeries(clock)
    served.record("green", failed=True, at=100.2)
    served.record("green", failed=False, at=100.7)
    served.record("blue", failed=False, at=101.1)
    served.record("green", failed=True, at=102.45)
    rows = served.series()
    assert [r["second"] for r in rows] == [100, 101, 102]
    assert rows[0]["green"] == {"requests": 2, "failures": 1}
    assert rows[1]["green"] == {"requests": 0, "failures": 0} and rows[1]["blue"]["requests"] == 1
    assert served.last_request_at("green") == 102.45
    assert served.last_failure_at("green") == 102.45
    assert served.last_request_at("blue") == 101.1
    assert [r["second"] for r in served.series(since=101.5)] == [101, 102]

"""Propagation: while a change is PENDING the share of resolvers answering with it grows linearly."""

from __future__ import annotations

import random

import pytest

from bluegreen_provider.sandbox.dns import ResolverPopulation, answer_weights, visible_change, weights_of
from bluegreen_provider.sandbox.route53_rules import AppliedChange
from bluegreen_provider.sandbox.world import weighted_record

ZONE = "Z1"


def _change(n: int, submitted: float, insync: float, blue: int, green: int) -> AppliedChange:
    return AppliedChange(
        change_id=f"C{n}",
        zone_id=ZONE,
        submitted_at=submitted,
        insync_at=insync,
        comment="",
        record_sets=(weighted_record("blue", blue) | {"Name": "api.lego-mocs.com."}, weighted_record("green", green)),
    )


class _History:
    def __init__(self, changes: list[AppliedChange]) -> None:
        self.changes = changes

    def zone(self, zone_id: str) -> list[AppliedChange]:
        return list(self.changes) if zone_id == ZONE else []


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_resolver_sees_a_change_at_its_own_fraction_of_the_pending_time() -> None:
    changes = [_change(1, 0, 0, 100, 0), _change(2, 100, 130, 0, 100)]
    assert visible_change(changes, 0.5, 114.9).change_id == "C1"
    assert visible_change(changes, 0.5, 115.0).change_id == "C2"
    assert visible_change(changes, 0.0, 100.0).change_id == "C2"
    assert visible_change(changes, 0.999, 129.9).change_id == "C1"
    assert visible_change(changes, 0.999, 130.0).change_id == "C2"
    assert visible_change(changes, 0.3, -1.0) is None


@pytest.mark.parametrize("elapsed", [0.0, 7.5, 15.0, 22.5, 29.0])
def test_the_share_of_resolvers_on_the_new_answer_grows_linearly(elapsed: float) -> None:
    clock = _Clock(0.0)
    history = _History([_change(1, 0, 0, 100, 0), _change(2, 1000, 1030, 0, 100)])
    population = ResolverPopulation(
        ZONE, clients=4000, ttl_seconds=1, seed=3, fallback=dict, history=history, clock=clock
    )
    share = population.share_seeing_latest(1000 + elapsed)
    assert share == pytest.approx(elapsed / 30, abs=0.03)
    assert population.share_seeing_latest(1030) == 1.0


def test_weights_seen_follow_the_resolvers_fraction_and_fall_back_to_moto_before_any_change() -> None:
    history = _History([])
    population = ResolverPopulation(
        ZONE, clients=10, ttl_seconds=1, seed=1, fallback=lambda: {"blue": 7, "green": 3}, history=history
    )
    assert population.weights_seen(0.5, 10.0) == {"blue": 7, "green": 3}
    history.changes = [_change(1, 0, 0, 100, 0), _change(2, 10, 20, 40, 60)]
    assert population.weights_seen(0.2, 11.9) == {"blue": 100, "green": 0}
    assert population.weights_seen(0.2, 12.0) == {"blue": 40, "green": 60}


def test_unhealthy_record_sets_drop_out_of_answers_unless_all_would() -> None:
    blue = weighted_record("blue", 90) | {"HealthCheckId": "hc-blue"}
    green = weighted_record("green", 10) | {"HealthCheckId": "hc-green"}
    assert weights_of([blue, green]) == {"blue": 90, "green": 10}
    assert answer_weights([blue, green], lambda hc: hc != "hc-green") == {"blue": 90}
    assert answer_weights([blue, green], lambda hc: False) == {"blue": 90, "green": 10}
    assert answer_weights([blue, green], None) == {"blue": 90, "green": 10}


def test_a_resolver_never_goes_back_to_an_older_answer() -> None:
    changes = [_change(1, 0, 0, 100, 0), _change(2, 100, 130, 0, 100)]
    rng = random.Random(5)
    for u in (rng.random() for _ in range(200)):
        seen = [visible_change(changes, u, t / 2).change_id for t in range(180, 280)]
        assert seen == sorted(seen)

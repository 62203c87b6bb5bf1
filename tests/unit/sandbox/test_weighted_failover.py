"""Route53's weighted routing with health checks, as the sandbox's resolvers answer.

A set without a health check is always healthy; the healthy sets of weight > 0 share by weight; only
if every set of weight > 0 is unhealthy do the healthy weight-0 sets share equally; if no set is
healthy, every set is answered as if healthy.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bluegreen_provider.sandbox.dns import answer_weights, pick_slot
from bluegreen_provider.sandbox.world import weighted_record


def sets(blue: int, green: int, *, blue_check: str | None = None, green_check: str | None = None) -> list[dict]:
    records = [weighted_record("blue", blue), weighted_record("green", green)]
    for record, check in zip(records, (blue_check, green_check), strict=True):
        if check:
            record["HealthCheckId"] = check
    return records


def failing(*checks: str):
    return lambda check: check not in checks


def test_without_checkers_the_weights_are_answered_as_they_are() -> None:
    assert answer_weights(sets(90, 10, blue_check="hc-b", green_check="hc-g")) == {"blue": 90, "green": 10}


def test_healthy_sets_of_weight_above_0_share_by_weight() -> None:
    assert answer_weights(sets(90, 10, blue_check="hc-b", green_check="hc-g"), failing()) == {"blue": 90, "green": 10}
    assert answer_weights(sets(100, 0, green_check="hc-g"), failing()) == {"blue": 100}


def test_an_unhealthy_set_of_weight_above_0_drops_out() -> None:
    records = sets(90, 10, blue_check="hc-b", green_check="hc-g")
    assert answer_weights(records, failing("hc-g")) == {"blue": 90}
    assert answer_weights(records, failing("hc-b")) == {"green": 10}


def test_an_unhealthy_candidate_at_weight_0_changes_nothing() -> None:
    assert answer_weights(sets(100, 0, green_check="hc-g"), failing("hc-g")) == {"blue": 100}


def test_once_every_set_above_0_is_unhealthy_a_weight_0_set_without_a_check_takes_everything() -> None:
    """The failover to an unvetted or retired slot: the live set carries a check, the weight-0 set none."""
    assert answer_weights(sets(100, 0, blue_check="hc-b"), failing("hc-b")) == {"green": 1}
    assert answer_weights(sets(0, 100, green_check="hc-g", blue_check="hc-b"), failing("hc-g")) == {"blue": 1}


def test_a_weight_0_set_whose_check_is_unhealthy_is_not_considered_either() -> None:
    records = sets(100, 0, blue_check="hc-b", green_check="hc-g")
    assert answer_weights(records, failing("hc-b")) == {"green": 1}
    assert answer_weights(records, failing("hc-b", "hc-g")) == {"blue": 100, "green": 0}  # as if all healthy


def test_when_every_set_is_unhealthy_all_are_answered_as_if_healthy() -> None:
    records = sets(90, 10, blue_check="hc-b", green_check="hc-g")
    assert answer_weights(records, failing("hc-b", "hc-g")) == {"blue": 90, "green": 10}


@pytest.mark.parametrize(
    ("blue_check", "green_check", "down", "expected"),
    [
        (None, None, (), {"blue": 1, "green": 1}),
        ("hc-b", None, ("hc-b",), {"green": 1}),
        ("hc-b", "hc-g", ("hc-b", "hc-g"), {"blue": 0, "green": 0}),
    ],
)
def test_all_weights_0_share_equally_among_the_healthy(blue_check, green_check, down, expected) -> None:
    records = sets(0, 0, blue_check=blue_check, green_check=green_check)
    assert answer_weights(records, failing(*down)) == expected


def test_with_no_check_on_either_set_at_100_0_traffic_never_reaches_weight_0() -> None:
    """The deployment's policy at 100/0: no set carries a check, whatever the checks say."""
    rng = random.Random(3)
    answers = answer_weights(sets(100, 0), lambda check: False)
    assert Counter(pick_slot(answers, rng) for _ in range(2000)) == {"blue": 2000}
    failover = answer_weights(sets(100, 0, blue_check="hc-b"), failing("hc-b"))
    assert Counter(pick_slot(failover, rng) for _ in range(2000)) == {"green": 2000}

"""Route53WeightedRouter: the split is the weighted sets, swapped in the state record's own batch."""

from __future__ import annotations

import pytest

from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.routers.route53 import Route53WeightedRouter
from bluegreen_provider.state import StateError, shift

from .conftest import FUNCTIONS, RUN1, V2, planned


def test_a_shift_moves_the_weighted_sets_in_the_state_batch_and_leaves_aliases_alone(route53_world):
    svc = planned(route53_world)
    assert isinstance(svc.router, Route53WeightedRouter)
    outcome = shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert route53_world.weights() == {"blue": 90, "green": 10} == route53_world.state().split
    assert outcome.applied is None  # nothing after the batch: it carried the weights
    assert {fn: (a["version"], a["weights"]) for fn, a in route53_world.aliases().items()} == {
        fn: ("1", {}) for fn in FUNCTIONS
    }
    assert svc.router.read_split() == {"blue": 90, "green": 10}
    assert svc.router.propagated(outcome.change_id)  # moto reports INSYNC at once


def test_the_batch_deletes_the_exact_sets_read_and_creates_their_successors(route53_world):
    svc = planned(route53_world)
    snap = svc.read()
    nxt = snap.state.__class__(**{**snap.state.__dict__, "split": {"blue": 50, "green": 50}})
    changes = svc.router.changes(snap.traffic, nxt, {"green": "hc-1"})
    assert [(a, r["SetIdentifier"], r["Weight"], r.get("HealthCheckId")) for a, r in changes] == [
        ("DELETE", "blue", 100, None),
        ("CREATE", "blue", 50, None),
        ("DELETE", "green", 0, None),
        ("CREATE", "green", 50, "hc-1"),
    ]


def test_a_missing_weighted_set_is_a_state_error(route53_world):
    client = route53_world.route53
    green = next(r for r in route53_world.records() if r.get("SetIdentifier") == "green")
    client.change_resource_record_sets(
        HostedZoneId=route53_world.zone_id, ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": green}]}
    )
    router = Route53WeightedRouter(route53_world.spec, Route53Hook(aws_conn_id=None), route53_world.zone_id)
    with pytest.raises(StateError, match=r"weighted set\(s\) \['green'\]"):
        router.observe(
            Route53Hook(aws_conn_id=None).get_record_sets(route53_world.zone_id, router.listed_records()), None
        )


def test_verify_says_what_the_sets_read_when_they_are_not_the_split_expected(route53_world):
    svc = planned(route53_world)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert svc.router.verify({"blue": 90, "green": 10}) is None
    assert (
        svc.router.verify({"blue": 50, "green": 50}) == "Route53 reads blue 90 / green 10, expected blue 50 / green 50"
    )

"""Which weighted set carries which Route53 health check, written by the state's compare-and-swap.

Route53 answers with a weight-0 set once every set of weight > 0 is unhealthy, and a set without a
health check is always healthy. So a check sits on a set only while every set has weight > 0 (the
canary steps); at 100/0 and 0/100 neither set carries one and the weight-0 slot (the unvetted
candidate, or the retired slot) can never be chosen. Each test reads the records back from moto.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from bluegreen_provider.sandbox.route53_rules import CHANGES
from bluegreen_provider.state import (
    DeploymentState,
    Phase,
    TransitionRefused,
    abort,
    hold,
    record_health_check,
    retire,
    rollback,
    shift,
)

from .conftest import RUN1, RUN2, V1, V2, planned

V3 = {"orders": "3", "gallery": "3"}
LATER = datetime.now(UTC) + timedelta(days=2)


def attached(zone) -> dict[str, str | None]:
    """Set identifier -> the HealthCheckId its weighted record carries in moto (None: no check)."""
    return {r["SetIdentifier"]: r.get("HealthCheckId") for r in zone.records() if "SetIdentifier" in r}


def new_check(zone, slot: str, run: str) -> str:
    return zone.client.create_health_check(
        CallerReference=f"bluegreen-{slot}-{run}",
        HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": f"{slot}.example.com", "Port": 443},
    )["HealthCheck"]["Id"]


def checked(zone, owner=RUN1, versions=V2, live_versions=V1):
    """...and its health stage: the candidate's check recorded. Returns (service, check id)."""
    svc = planned(zone, owner, versions, live_versions)
    candidate = zone.state().candidate
    check = new_check(zone, candidate, owner)
    assert record_health_check(svc, owner, candidate, check) is not None
    return svc, check


def test_the_check_is_recorded_at_weight_0_but_on_no_record(zone):
    svc, green = checked(zone)
    state = zone.state()
    assert state.health_checks == {"green": green} and state.reason == "release deployed"
    assert zone.split() == {"blue": 100, "green": 0}
    assert attached(zone) == {"blue": None, "green": None}
    assert record_health_check(svc, RUN1, "green", green) is None  # a re-run changes nothing
    assert zone.state().generation == state.generation


def test_attached_only_while_both_sets_take_traffic_through_a_whole_deployment(zone):
    svc, green = checked(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert zone.split() == {"blue": 90, "green": 10}
    assert attached(zone) == {"blue": None, "green": green}  # blue has no check of its own yet
    shift(svc, RUN1, 50, previous_pct=10, serving=V2)
    assert zone.split() == {"blue": 50, "green": 50} and attached(zone) == {"blue": None, "green": green}
    hold(svc, RUN1, "rejected")
    assert attached(zone) == {"blue": None, "green": green}  # a held canary keeps its check
    shift(svc, RUN1, 100, previous_pct=50, serving=V2, retention_seconds=60)
    assert zone.split() == {"blue": 0, "green": 100}
    assert attached(zone) == {"blue": None, "green": None}  # the new live set: no check, so blue is never chosen
    assert zone.state().health_checks == {"green": green}  # kept for the next deployment's canary


def test_the_next_deployment_attaches_both_slots_checks_at_its_canary_steps_only(zone):
    svc, green = checked(zone)
    shift(svc, RUN1, 100, previous_pct=0, serving=V2)
    svc, blue = checked(zone, RUN2, versions=V3, live_versions=V2)
    state = zone.state()
    assert (state.owner, state.live, state.candidate) == (RUN2, "green", "blue")
    assert state.health_checks == {"green": green, "blue": blue}
    assert attached(zone) == {"blue": None, "green": None}  # the candidate blue at 0 carries nothing
    shift(svc, RUN2, 10, previous_pct=0, serving=V3)
    assert zone.split() == {"blue": 10, "green": 90} and attached(zone) == {"blue": blue, "green": green}
    shift(svc, RUN2, 100, previous_pct=10, serving=V3, retention_seconds=60)
    assert zone.split() == {"blue": 100, "green": 0} and attached(zone) == {"blue": None, "green": None}


@pytest.mark.parametrize("step", [10, 50])
def test_a_rollback_detaches_in_the_same_change_batch_as_the_weights(zone, step):
    svc, green = checked(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    if step == 50:
        shift(svc, RUN1, 50, previous_pct=10, serving=V2)
    assert attached(zone)["green"] == green
    rollback(svc, RUN1, f"soak_{step} failed")
    assert zone.split() == {"blue": 100, "green": 0} and attached(zone) == {"blue": None, "green": None}
    assert zone.state().phase == Phase.ROLLED_BACK and zone.state().health_checks == {"green": green}
    # Route53 never held the canary's weights without its check, nor 100/0 with one: one batch each.
    history = [
        {r["SetIdentifier"]: (int(r["Weight"]), r.get("HealthCheckId")) for r in c.record_sets if "Weight" in r}
        for c in CHANGES.zone(zone.zone_id)[-2:]
    ]
    assert history == [
        {"blue": (100 - step, None), "green": (step, green)},
        {"blue": (100, None), "green": (0, None)},
    ]
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)  # a cleared shift attaches it again
    assert attached(zone) == {"blue": None, "green": green}


def test_the_emergency_rollback_detaches_mid_canary_and_after_promotion(zone):
    svc, _ = checked(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    abort(svc, "cli:oncall", "manual", retained_serving=lambda _: V1)
    assert zone.split() == {"blue": 100, "green": 0} and attached(zone) == {"blue": None, "green": None}

    svc, green = checked(zone, RUN2)  # blue is live again: green is the candidate once more
    shift(svc, RUN2, 50, previous_pct=0, serving=V2)
    assert attached(zone) == {"blue": None, "green": green}
    shift(svc, RUN2, 100, previous_pct=50, serving=V2, retention_seconds=3600)  # blue is retained
    abort(svc, "cli:oncall", "manual", retained_serving=lambda _: V1)
    assert zone.split() == {"blue": 100, "green": 0} and attached(zone) == {"blue": None, "green": None}
    assert zone.state().health_checks == {"green": green}


def test_retire_drops_the_retired_slots_check_and_names_it(zone):
    svc, green = checked(zone)
    shift(svc, RUN1, 100, previous_pct=0, serving=V2)
    svc, blue = checked(zone, RUN2, versions=V3, live_versions=V2)
    shift(svc, RUN2, 100, previous_pct=0, serving=V3, retention_seconds=60)  # green is retained
    outcome = retire(svc, RUN2, now=LATER)
    assert outcome.before.state.health_checks == {"green": green, "blue": blue}
    assert outcome.state == zone.state() and zone.state().phase == Phase.RETIRED
    assert zone.state().health_checks == {"blue": blue}
    assert attached(zone) == {"blue": None, "green": None}


def test_a_check_on_a_set_at_100_0_is_removed_by_the_next_transition(zone):
    """A record written before the policy (or by hand): the live set's check would send traffic to weight 0."""
    stray = new_check(zone, "blue", "by-hand")
    record = next(r for r in zone.records() if r.get("SetIdentifier") == "blue")
    zone.client.change_resource_record_sets(
        HostedZoneId=zone.zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {**record, "HealthCheckId": stray}}]},
    )
    assert attached(zone)["blue"] == stray
    planned(zone)
    assert attached(zone) == {"blue": None, "green": None}
    assert stray in {c["Id"] for c in zone.client.list_health_checks()["HealthChecks"]}  # detached, never deleted


def test_a_record_written_before_health_checks_existed_reads_with_none():
    text = json.dumps(
        {
            "v": 1,
            "service": "s",
            "generation": 4,
            "phase": "retained",
            "owner": "d/r",
            "live": "green",
            "candidate": "blue",
            "split": {"blue": 0, "green": 100},
            "started_at": "2026-12-01T00:00:00+00:00",
        }
    )
    state = DeploymentState.from_json(text)
    assert state.health_checks == {}
    assert DeploymentState.from_json(state.to_json()) == state


def test_record_health_check_guards_and_changes_nothing_when_refused(zone):
    svc = planned(zone)
    check = new_check(zone, "green", RUN1)
    before = zone.records()
    with pytest.raises(TransitionRefused, match=f"^run {RUN1} .* owns orders-api now; this run \\({RUN2}\\)"):
        record_health_check(svc, RUN2, "green", check)
    live = r"^not recording a health check for blue: it is live; the candidate is green$"
    with pytest.raises(TransitionRefused, match=live):
        record_health_check(svc, RUN1, "blue", check)
    with pytest.raises(ValueError, match=re.escape("unknown slot 'purple'; the slots are ['blue', 'green']")):
        record_health_check(svc, RUN1, "purple", check)
    with pytest.raises(ValueError, match="a health check id must be a non-empty string, got ''"):
        record_health_check(svc, RUN1, "green", "")
    assert zone.records() == before
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    before = zone.records()
    with pytest.raises(
        TransitionRefused,
        match=re.escape("not recording a health check for green: it takes live traffic (blue 90 / green 10)"),
    ):
        record_health_check(svc, RUN1, "green", check)
    assert zone.records() == before


def test_record_health_check_is_refused_once_promoted_or_aborted(zone):
    svc, _ = checked(zone)
    shift(svc, RUN1, 100, previous_pct=0, serving=V2)
    with pytest.raises(TransitionRefused, match="already promoted"):
        record_health_check(svc, RUN1, "blue", new_check(zone, "blue", RUN1))
    svc = planned(zone, RUN2, versions=V3, live_versions=V2)
    abort(svc, "cli:oncall", "manual", retained_serving=lambda _: V2)
    with pytest.raises(TransitionRefused, match="rolled back by hand"):
        record_health_check(svc, RUN2, "blue", new_check(zone, "blue", RUN2))


def test_the_same_check_again_mid_canary_is_a_no_op(zone):
    """Clearing the health stage mid-canary re-runs it with the same check: nothing changes, nothing fails."""
    svc, green = checked(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    before = zone.records()
    assert record_health_check(svc, RUN1, "green", green) is None
    assert zone.records() == before


def test_a_new_check_replaces_the_slots_previous_one_and_names_it(zone):
    svc, first = checked(zone)
    rollback(svc, RUN1, "health probe failed")
    second = new_check(zone, "green", "retry")
    outcome = record_health_check(svc, RUN1, "green", second)
    assert outcome is not None and outcome.before.state.health_checks == {"green": first}
    assert zone.state().health_checks == {"green": second} and zone.state().phase == Phase.ROLLED_BACK

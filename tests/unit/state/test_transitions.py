"""The deployment state's transitions, each read back from moto under Route53's exact-match rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bluegreen_provider.state import (
    DeploymentState,
    NothingToDo,
    Phase,
    StateError,
    TransitionRefused,
    abort,
    acquire,
    decode_txt,
    encode_txt,
    hold,
    record_release,
    retire,
    rollback,
    shift,
)
from tests.unit.weighted_zone import weighted_set

from .conftest import RECORD, RUN1, RUN2, V1, V2, always_active, never_active, planned, promoted


def serving(versions):
    return lambda slot: dict(versions)


# -- encoding -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "plain", 'q"uo\\te', "x" * 1000, '"' * 300, json.dumps({"a": "b\\c"})])
def test_txt_round_trip(text):
    value = encode_txt(text)
    strings = value.split('" "')
    assert all(len(s.strip('"')) <= 255 for s in strings)
    assert decode_txt(value) == text


def test_oversized_state_is_refused_before_any_change():
    with pytest.raises(StateError, match="4000"):
        encode_txt("x" * 4000)


def test_owner_of_any_length_and_characters_is_kept_exactly(zone):
    owner = 'deploy/manual__2026-12-01T00:00:00~"quoted"\\' + "r" * 300
    svc = planned(zone, owner)
    assert zone.state().owner == owner
    with pytest.raises(TransitionRefused, match="owns"):
        shift(svc, owner[:-1], 10, previous_pct=0, serving=V2)  # a prefix is another run
    shift(svc, owner, 10, previous_pct=0, serving=V2)
    assert zone.split() == {"blue": 90, "green": 10}


# -- acquire ------------------------------------------------------------------------------------------


def test_first_plan_creates_the_state_with_the_live_slot(zone):
    state, warnings = acquire(zone.service(), RUN1, live_versions=V1, run_is_active=always_active)
    stored = zone.state()
    assert stored == state
    assert (stored.phase, stored.generation, stored.live, stored.candidate) == (Phase.PLANNED, 1, "blue", "green")
    assert stored.split == {"blue": 100, "green": 0} == zone.split()
    assert stored.versions == {"blue": V1} and warnings == []


def test_a_second_plan_is_refused_naming_the_owner_and_changes_nothing(zone):
    planned(zone)
    before = zone.records()
    with pytest.raises(TransitionRefused, match=f"run {RUN1}"):
        acquire(zone.service(), RUN2, live_versions=V1, run_is_active=always_active)
    assert zone.records() == before


def test_an_abandoned_clean_run_is_taken_over_but_not_a_split_one(zone):
    svc = planned(zone)
    state, warnings = acquire(zone.service(), RUN2, live_versions=V1, run_is_active=never_active)
    assert state.owner == RUN2 and "took over" in warnings[0]
    record_release(svc, RUN2, V2)
    shift(svc, RUN2, 10, previous_pct=0, serving=V2)
    before = zone.records()
    with pytest.raises(TransitionRefused, match="with traffic at blue 90 / green 10"):
        acquire(zone.service(), "deploy/run3", live_versions=V1, run_is_active=never_active)
    assert zone.records() == before


def test_the_same_run_resumes_without_a_change(zone):
    planned(zone)
    generation = zone.state().generation
    state, warnings = acquire(zone.service(), RUN1, live_versions=V1, run_is_active=always_active)
    assert state.generation == generation == zone.state().generation
    assert "resuming" in warnings[0]


def test_dry_run_changes_nothing(zone):
    before = zone.records()
    state, _ = acquire(zone.service(), RUN1, live_versions=V1, run_is_active=always_active, dry_run=True)
    assert state.phase == Phase.PLANNED and zone.records() == before and zone.state() is None


def test_a_hand_edited_split_is_refused(zone):
    planned(zone)
    zone.client.change_resource_record_sets(
        HostedZoneId=zone.zone_id,
        ChangeBatch={"Changes": [weighted_set(RECORD, "green", 20)]},
    )
    with pytest.raises(StateError, match="changed outside bluegreen"):
        shift(zone.service(), RUN1, 10, previous_pct=0, serving=V2)


# -- shift and promote --------------------------------------------------------------------------------


def test_shift_needs_the_previous_step(zone):
    svc = planned(zone)
    with pytest.raises(TransitionRefused, match="follows 10 %"):
        shift(svc, RUN1, 50, previous_pct=10, serving=V2)
    assert zone.split() == {"blue": 100, "green": 0}
    outcome = shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert outcome.state.phase == Phase.SHIFTING and zone.state().split == zone.split() == {"blue": 90, "green": 10}
    assert shift(svc, RUN1, 10, previous_pct=0, serving=V2) is None  # a re-run changes nothing


def test_shift_refuses_a_candidate_serving_other_code(zone):
    svc = planned(zone)
    with pytest.raises(TransitionRefused, match="do not serve this run's release"):
        shift(svc, RUN1, 10, previous_pct=0, serving={"orders": "2", "gallery": "7"})
    assert zone.split() == {"blue": 100, "green": 0}


def test_shift_before_any_release_is_refused(zone):
    svc = zone.service()
    acquire(svc, RUN1, live_versions=V1, run_is_active=always_active)
    with pytest.raises(TransitionRefused, match="deploy_green has not run"):
        shift(svc, RUN1, 10, previous_pct=0, serving=V2)


def test_promotion_retains_the_old_slot_with_its_versions(zone):
    promoted(zone, retention=3600)
    state = zone.state()
    assert state.phase == Phase.RETAINED and (state.live, state.candidate) == ("green", "blue")
    assert state.retained.slot == "blue" and state.retained.versions == V1 and state.retained.owner == RUN1
    assert datetime.now(UTC) + timedelta(seconds=3590) < state.retained.until_dt
    assert zone.split() == {"blue": 0, "green": 100}
    again = shift(zone.service(), RUN1, 100, previous_pct=10, serving=V2, retention_seconds=3600)
    assert again is None and zone.state().generation == state.generation  # re-run: no new deadline


def test_a_promoted_run_never_moves_traffic_again(zone):
    svc = promoted(zone)
    before = zone.records()
    with pytest.raises(TransitionRefused, match="already promoted"):
        shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    with pytest.raises(NothingToDo, match="does not undo a promotion"):
        rollback(svc, RUN1, "late failure")
    assert zone.records() == before


# -- rollback, hold, abort ----------------------------------------------------------------------------


def test_rollback_restores_live_from_any_owned_split_and_a_second_call_is_a_no_op(zone):
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    shift(svc, RUN1, 50, previous_pct=10, serving=V2)
    outcome = rollback(svc, RUN1, "soak_50 failed")
    assert outcome.split_changed and zone.split() == {"blue": 100, "green": 0}
    assert zone.state().phase == Phase.ROLLED_BACK
    before = zone.records()
    with pytest.raises(NothingToDo, match="already on blue"):
        rollback(svc, RUN1, "again")
    assert zone.records() == before


def test_a_run_rolled_back_by_its_soak_resumes_when_its_shift_is_cleared(zone):
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    rollback(svc, RUN1, "soak_10 failed")
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert zone.split() == {"blue": 90, "green": 10} and zone.state().phase == Phase.SHIFTING


def test_a_cleared_stage_re_runs_the_plan_and_keeps_the_recorded_release(zone):
    """Clearing a stage clears its setup (the plan): the re-run plan keeps what deploy_green recorded."""
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    rollback(svc, RUN1, "soak_10 failed")
    acquire(svc, RUN1, live_versions=V1, run_is_active=always_active)
    assert zone.state().versions == {"blue": V1, "green": V2} and zone.state().phase == Phase.PLANNED
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert zone.split() == {"blue": 90, "green": 10}


def test_rollback_of_another_runs_deployment_changes_nothing(zone):
    svc = planned(zone, RUN2)
    shift(svc, RUN2, 10, previous_pct=0, serving=V2)
    before = zone.records()
    with pytest.raises(NothingToDo, match=f"run {RUN2}"):
        rollback(svc, RUN1, "stale callback")
    assert zone.records() == before


def test_hold_keeps_the_split_and_only_the_owner_may_promote_or_roll_back(zone):
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    shift(svc, RUN1, 50, previous_pct=10, serving=V2)
    hold(svc, RUN1, "rejected by alice")
    assert zone.state().phase == Phase.HELD and zone.split() == {"blue": 50, "green": 50}
    with pytest.raises(NothingToDo, match="a hold keeps its split"):
        rollback(svc, RUN1, "end of held run", include_held=False)
    with pytest.raises(TransitionRefused, match="held"):
        shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    shift(svc, RUN1, 100, previous_pct=50, serving=V2, retention_seconds=60)
    assert zone.split() == {"blue": 0, "green": 100}


def test_abort_mid_deployment_stops_the_run_for_good(zone):
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    abort(svc, "cli:oncall", "manual rollback", retained_serving=serving(V1))
    assert zone.split() == {"blue": 100, "green": 0} and zone.state().phase == Phase.ABORTED
    before = zone.records()
    with pytest.raises(TransitionRefused, match="rolled back by hand"):
        shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    with pytest.raises(NothingToDo, match="already rolled back"):
        abort(svc, "cli:oncall", "manual rollback", retained_serving=serving(V1))
    assert zone.records() == before


def test_emergency_rollback_after_promotion_returns_to_the_retained_release(zone):
    svc = promoted(zone)
    outcome = abort(svc, "cli:oncall", "manual rollback", retained_serving=serving(V1))
    assert zone.split() == {"blue": 100, "green": 0}
    state = zone.state()
    assert state.phase == Phase.ABORTED and state.live == "blue" and state.retained is None
    assert outcome.state == state


def test_emergency_rollback_refuses_a_retained_slot_that_serves_other_code(zone):
    svc = promoted(zone)
    before = zone.records()
    with pytest.raises(TransitionRefused, match="no longer serve the retained release"):
        abort(svc, "cli:oncall", "manual rollback", retained_serving=serving({"orders": "1", "gallery": "9"}))
    assert zone.records() == before


def test_emergency_rollback_after_a_rolled_back_release_refuses(zone):
    """Run 1 promotes; run 2 deploys into the retained slot and is rolled back: nothing safe to go back to."""
    promoted(zone, RUN1)
    svc = zone.service()
    _, warnings = acquire(svc, RUN2, live_versions=V2, run_is_active=always_active)
    assert "ends that retention" in warnings[0] and zone.state().retained is None
    record_release(svc, RUN2, {"orders": "3", "gallery": "3"})
    shift(svc, RUN2, 10, previous_pct=0, serving={"orders": "3", "gallery": "3"})
    rollback(svc, RUN2, "soak_10 failed")
    before = zone.records()
    with pytest.raises(NothingToDo, match="already rolled back"):
        abort(svc, "cli:oncall", "manual rollback", retained_serving=serving({"orders": "3", "gallery": "3"}))
    assert zone.records() == before and zone.split() == {"blue": 0, "green": 100}


# -- retire -------------------------------------------------------------------------------------------


def test_retire_waits_for_the_deadline_then_ends_the_retention(zone):
    svc = promoted(zone, retention=3600)
    with pytest.raises(TransitionRefused, match="retained until"):
        retire(svc, RUN1)
    state = retire(svc, RUN1, now=datetime.now(UTC) + timedelta(hours=2)).state
    assert state.phase == Phase.RETIRED and zone.state().retained is None
    with pytest.raises(NothingToDo):
        retire(svc, RUN1, now=datetime.now(UTC) + timedelta(hours=2))


def test_retire_of_a_service_another_run_owns_changes_nothing(zone):
    promoted(zone, RUN1, retention=1)
    acquire(zone.service(), RUN2, live_versions=V2, run_is_active=always_active)
    before = zone.records()
    with pytest.raises(NothingToDo, match=f"run {RUN2}"):
        retire(zone.service(), RUN1, now=datetime.now(UTC) + timedelta(hours=2))
    assert zone.records() == before


def test_state_json_round_trip():
    state = DeploymentState(
        service="s",
        generation=3,
        phase=Phase.HELD,
        owner="d/r",
        live="blue",
        candidate="green",
        split={"blue": 50, "green": 50},
        versions={"blue": V1, "green": V2},
    )
    assert DeploymentState.from_json(state.to_json()) == state
    with pytest.raises(StateError):
        DeploymentState.from_json('{"phase": "nonsense"}')

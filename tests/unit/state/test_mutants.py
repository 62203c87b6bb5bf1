"""Behaviour of the deployment state that mutation testing of ``state.py`` showed was unchecked.

Each test reads back what Route53 (moto) holds: the weights and the decoded state record, or the
message a person is shown.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from bluegreen_provider.state import (
    DeploymentState,
    NothingToDo,
    Phase,
    StateError,
    TransitionRefused,
    abort,
    acquire,
    check_may_release,
    encode_txt,
    hold,
    record_release,
    retire,
    rollback,
    shift,
    state_record_name,
)
from tests.unit.weighted_zone import weighted_set

from .conftest import RECORD, RUN1, RUN2, V1, V2, always_active, planned


def set_weights(zone, **weights):
    zone.client.change_resource_record_sets(
        HostedZoneId=zone.zone_id,
        ChangeBatch={"Changes": [weighted_set(RECORD, c, w) for c, w in weights.items()]},
    )


def refused(exc, message):
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


# -- encoding and the record -------------------------------------------------------------------------


def test_only_quotes_and_backslashes_are_escaped_and_strings_fill_to_255():
    assert encode_txt('aX"\\b') == '"aX\\"\\\\b"'
    assert encode_txt("x" * 255) == '"' + "x" * 255 + '"'
    assert encode_txt("x" * 256) == '"' + "x" * 255 + '" "x"'


def test_a_state_of_exactly_4000_characters_fits():
    text = "x" * 3951 + '"'  # 3953 characters escaped, in 16 strings: 32 quotes and 15 spaces
    assert len(encode_txt(text)) == 4000


def test_the_record_is_compact_sorted_json_of_schema_1(zone):
    planned(zone)
    txt = next(r for r in zone.records() if r["Type"] == "TXT")
    from bluegreen_provider.state import decode_txt

    text = decode_txt(txt["ResourceRecords"][0]["Value"])
    data = json.loads(text)
    assert data["v"] == 1 and list(data) == sorted(data)
    assert text == json.dumps(data, separators=(",", ":"), sort_keys=True)


def test_a_record_without_version_or_retention_reads():
    text = json.dumps(
        {
            "service": "s",
            "generation": 1,
            "phase": "planned",
            "owner": "d/r",
            "live": "blue",
            "candidate": "green",
            "split": {"blue": 100, "green": 0},
        }
    )
    state = DeploymentState.from_json(text)
    assert state.retained is None and state.phase == Phase.PLANNED


def test_an_unreadable_record_is_quoted_to_200_characters():
    text = "{" + "y" * 300
    with pytest.raises(StateError) as err:
        DeploymentState.from_json(text)
    assert str(err.value).startswith("the deployment state record cannot be read (")
    assert str(err.value).endswith(": " + repr(text[:200]))


def test_state_record_name_is_lower_case_with_one_trailing_dot():
    assert state_record_name(SimpleNamespace(record_name="API.Example.com.")) == "_bluegreen.api.example.com."
    assert state_record_name(SimpleNamespace(record_name="api.example.com")) == "_bluegreen.api.example.com."
    assert state_record_name(SimpleNamespace(record_name="WWW.X.")) == "_bluegreen.www.x."


def test_a_missing_weighted_set_is_named(zone):
    zone.client.change_resource_record_sets(
        HostedZoneId=zone.zone_id, ChangeBatch={"Changes": [weighted_set(RECORD, "green", 0, action="DELETE")]}
    )
    with pytest.raises(StateError, match=re.escape("weighted set(s) ['green'] of api.example.com not found in zone ")):
        zone.service().read()
    with pytest.raises(StateError, match=re.escape("existing sets: ['blue']")):
        zone.service().read()


# -- transition --------------------------------------------------------------------------------------


def test_each_transition_bumps_the_generation_and_logs_what_it_did(zone, caplog):
    caplog.set_level(logging.INFO, logger="bluegreen_provider.state")
    svc = zone.service()
    acquire(svc, RUN1, live_versions=V1, run_is_active=always_active)
    record_release(svc, RUN1, V2)
    out = shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert zone.state().generation == 3 and out.state == zone.state()
    assert zone.client.get_change(Id=out.change_id)["ChangeInfo"]["Id"].endswith(out.change_id.split("/")[-1])
    hold(svc, RUN1, "rejected")
    abort(svc, "cli:oncall", "manual", retained_serving=lambda s: V1)
    lines = [r.getMessage() for r in caplog.records if r.name == "bluegreen_provider.state"]
    expected = [
        "plan: orders-api generation 1, planned, blue 100 / green 0",
        "deploy: orders-api generation 2, planned, blue 100 / green 0",
        "shift to 10 %: orders-api generation 3, shifting, blue 90 / green 10",
        "hold: orders-api generation 4, held, blue 90 / green 10",
        "emergency rollback: orders-api generation 5, aborted, blue 100 / green 0",
    ]
    assert [line.split(" (change ")[0] for line in lines] == expected
    assert lines[2].endswith(f"(change {out.change_id})")


def test_retire_and_promote_log_their_names(zone, caplog):
    caplog.set_level(logging.INFO, logger="bluegreen_provider.state")
    svc = planned(zone)
    shift(svc, RUN1, 100, previous_pct=0, serving=V2, retention_seconds=60)
    retire(svc, RUN1, now=datetime.now(UTC) + timedelta(hours=1))
    lines = [r.getMessage().split(" (change ")[0] for r in caplog.records if r.name == "bluegreen_provider.state"]
    assert lines[-2:] == [
        "shift to 100 %: orders-api generation 3, retained, blue 0 / green 100",
        "retire: orders-api generation 4, retired, blue 0 / green 100",
    ]


def test_a_lost_race_is_read_again_and_decided_again(zone, caplog):
    caplog.set_level(logging.INFO, logger="bluegreen_provider.state")
    svc = planned(zone)
    calls = []

    def decide(snap):
        calls.append(snap.state.generation)
        if len(calls) == 1:
            hold(zone.service(), RUN1, "held meanwhile")  # another actor lands first
        return snap.state

    out = svc.transition(decide, what="test")
    assert calls == [2, 3] and out.state.generation == 4 == zone.state().generation
    races = [r.getMessage() for r in caplog.records if "lost a race" in r.getMessage()]
    assert len(races) == 1 and races[0].startswith("test lost a race on api.example.com (")
    assert "(None)" not in races[0] and "()" not in races[0]


def test_a_race_lost_every_time_is_refused_after_the_attempts(zone):
    svc = planned(zone)

    def decide(snap):
        set_weights(zone, green=snap.split["green"] + 1)
        return snap.state

    with pytest.raises(TransitionRefused) as err:
        svc.transition(decide, what="test", attempts=2)
    msg = str(err.value)
    assert msg.startswith("test: Route53 kept rejecting the change after 2 attempts (")
    assert msg.endswith("); someone else keeps changing api.example.com")
    assert "()" not in msg and "(None)" not in msg


# -- guards and messages -----------------------------------------------------------------------------


def test_check_may_release(zone):
    with refused(
        TransitionRefused,
        "orders-api has no deployment state record (_bluegreen.api.example.com.): no deployment has planned yet",
    ):
        check_may_release(zone.service(), RUN1)
    svc = planned(zone)
    assert check_may_release(svc, RUN1) == zone.state()
    with pytest.raises(TransitionRefused, match=f"^run {RUN1} .* owns orders-api now; this run \\({RUN2}\\)"):
        check_may_release(svc, RUN2)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    with refused(
        TransitionRefused,
        "refusing to change slot green: it takes live traffic (blue 90 / green 10). Changing code under live "
        "traffic is not a release; roll back first (candidate weight 0), then deploy",
    ):
        check_may_release(svc, RUN1)


def test_guards_name_the_service_and_the_owner(zone):
    svc = zone.service()
    for call in (
        lambda: record_release(svc, RUN1, V2),
        lambda: hold(svc, RUN1, "x"),
        lambda: retire(svc, RUN1),
    ):
        with pytest.raises(TransitionRefused, match=r"^orders-api has no deployment state record"):
            call()
    with refused(NothingToDo, "no deployment state: this run never took the service; traffic was not touched"):
        rollback(svc, RUN1, "x")
    with refused(
        NothingToDo, "nothing to roll back: orders-api has no deployment state; traffic reads blue 100 / green 0"
    ):
        abort(svc, "cli", "x", retained_serving=lambda s: V1)
    planned(zone)
    for call in (lambda: record_release(svc, RUN2, V2), lambda: hold(svc, RUN2, "x")):
        with pytest.raises(TransitionRefused, match=f"owns orders-api now; this run \\({RUN2}\\) must not change it"):
            call()


def test_a_release_into_a_candidate_with_traffic_is_refused(zone):
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    with refused(
        TransitionRefused,
        "not releasing into green: it takes live traffic (blue 90 / green 10). Roll back first (candidate weight "
        "0), then deploy",
    ):
        record_release(svc, RUN1, V2)


def test_a_re_release_after_a_rollback_re_establishes_the_plan(zone):
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    rollback(svc, RUN1, "failed")
    generation = zone.state().generation
    state = record_release(svc, RUN1, V2)
    assert state.phase == Phase.PLANNED == zone.state().phase and zone.state().generation == generation + 1
    assert zone.state().reason == "release deployed"
    assert record_release(svc, RUN1, V2) == zone.state() and zone.state().generation == generation + 1


def test_reasons_recorded_by_each_transition(zone):
    svc = zone.service()
    acquire(svc, RUN1, live_versions=V1, run_is_active=always_active)
    assert zone.state().reason == "planned"
    record_release(svc, RUN1, V2)
    assert zone.state().reason == "release deployed"
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert zone.state().reason == "shift to 10 %"
    hold(svc, RUN1, "h" * 400)
    assert zone.state().reason == "h" * 300
    assert hold(svc, RUN1, "again") == zone.state() and zone.state().reason == "h" * 300
    rollback(svc, RUN1, "r" * 400)
    assert zone.state().reason == "r" * 300 and zone.state().phase == Phase.ROLLED_BACK


def test_abort_reason_and_emergency_rollback_state(zone):
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    abort(svc, "cli:oncall", "a" * 400, retained_serving=lambda s: V1)
    assert zone.state().reason == ("a" * 400 + " by cli:oncall")[:300]


def test_emergency_rollback_asks_the_retained_slot_and_swaps_live_and_candidate(zone):
    svc = planned(zone)
    shift(svc, RUN1, 100, previous_pct=0, serving=V2, retention_seconds=3600)
    asked = []

    def serving(slot):
        asked.append(slot)
        return {"orders": "1"}

    with refused(
        TransitionRefused,
        "not rolling back to blue: its aliases no longer serve the retained release ({'gallery': '1 -> None'}); "
        "nothing safe to go back to. Deploy the previous release as a new run",
    ):
        abort(svc, "cli", "x", retained_serving=serving)
    assert asked == ["blue"]
    with pytest.raises(TransitionRefused, match=re.escape("({'gallery': '1 -> 9'})")):
        abort(svc, "cli", "x", retained_serving=lambda s: {"orders": "1", "gallery": "9"})
    abort(svc, "cli", "bad", retained_serving=lambda s: V1)
    state = zone.state()
    assert (state.live, state.candidate, state.split) == ("blue", "green", {"blue": 100, "green": 0})
    assert state.reason == "emergency rollback to the retained release (bad by cli)"


def test_emergency_rollback_after_the_retention_or_without_one(zone):
    svc = planned(zone)
    out = shift(svc, RUN1, 100, previous_pct=0, serving=V2)  # no retention by default
    state = zone.state()
    assert out.state == state
    assert state.phase == Phase.PROMOTED and state.retained is None and state.reason == "promoted"
    with refused(
        NothingToDo, "nothing to roll back: the last promotion retained nothing; green is live (blue 0 / green 100)"
    ):
        abort(svc, "cli", "x", retained_serving=lambda s: V1)


def test_emergency_rollback_once_retired_or_expired(zone):
    svc = planned(zone)
    shift(svc, RUN1, 100, previous_pct=0, serving=V2, retention_seconds=1)
    until = zone.state().retained.until
    time.sleep(1.1)
    with refused(NothingToDo, f"nothing to roll back to: the retention of blue ended at {until}"):
        abort(svc, "cli", "x", retained_serving=lambda s: V1)
    retire(svc, RUN1, now=zone.state().retained.until_dt)  # the deadline itself ends the retention
    assert zone.state().phase == Phase.RETIRED and zone.state().reason == "retired blue"
    with refused(
        NothingToDo,
        "nothing to roll back: the previous release's retention ended and it was retired; green is live "
        "(blue 0 / green 100)",
    ):
        abort(svc, "cli", "x", retained_serving=lambda s: V1)
    with refused(NothingToDo, "this run's deployment is retired; nothing is retained"):
        retire(svc, RUN1)


def test_a_retention_of_one_second_retains(zone):
    svc = planned(zone)
    out = shift(svc, RUN1, 100, previous_pct=0, serving=V2, retention_seconds=1)
    assert zone.state().phase == Phase.RETAINED and out.state == zone.state()


def test_shift_messages(zone):
    svc = zone.service()
    acquire(svc, RUN1, live_versions=V1, run_is_active=always_active)
    with refused(
        TransitionRefused,
        "not shifting traffic to green: its aliases do not serve this run's release ({'*': 'no release recorded "
        "for the candidate yet (deploy_green has not run)'}). Clear deploy_green to release again",
    ):
        shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    record_release(svc, RUN1, V2)
    with pytest.raises(TransitionRefused, match=re.escape("({'gallery': 'recorded 2, alias serves nothing'})")):
        shift(svc, RUN1, 10, previous_pct=0, serving={"orders": "2", "gallery": None})
    with pytest.raises(TransitionRefused, match=re.escape("({'gallery': 'recorded 2, alias serves 7'})")):
        shift(svc, RUN1, 10, previous_pct=0, serving={"orders": "2", "gallery": "7"})
    shift(svc, RUN1, 50, previous_pct=0, serving=V2)
    hold(svc, RUN1, "x")
    with refused(TransitionRefused, "the deployment is held at blue 50 / green 50; approve it or roll back"):
        shift(svc, RUN1, 50, previous_pct=50, serving=V2)
    shift(svc, RUN1, 100, previous_pct=50, serving=V2)
    assert zone.state().reason == "promoted"


def test_a_rollback_at_the_stage_start_wins(zone):
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    rollback(svc, RUN1, "failed")
    rolled = zone.state()
    with refused(
        TransitionRefused,
        f"not shifting: this run was rolled back at {rolled.updated_at} (failed) while 10 % was being applied; "
        "traffic stays on blue. Clear the stage to retry",
    ):
        shift(svc, RUN1, 10, previous_pct=0, serving=V2, started_at=datetime.fromisoformat(rolled.updated_at))
    naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2, started_at=naive)
    assert zone.split() == {"blue": 90, "green": 10}


def test_rollback_of_a_shifting_run_ignores_include_held(zone):
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    rollback(svc, RUN1, "end of run", include_held=False)
    assert zone.split() == {"blue": 100, "green": 0}


def test_rollback_of_a_held_run_by_default(zone, caplog):
    caplog.set_level(logging.INFO, logger="bluegreen_provider.state")
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    hold(svc, RUN1, "x")
    rollback(svc, RUN1, "failed")
    assert zone.split() == {"blue": 100, "green": 0}
    line = [r.getMessage() for r in caplog.records if r.name == "bluegreen_provider.state"][-1]
    assert line.startswith("rollback: orders-api generation 5, rolled_back, blue 100 / green 0 (change ")


# -- acquire -----------------------------------------------------------------------------------------


def test_acquire_asks_about_the_owning_run_and_says_why_it_refuses(zone):
    planned(zone)
    asked = []

    def active(owner):
        asked.append(owner)
        return True

    with refused(
        TransitionRefused,
        f"another deployment owns this service: run {RUN1} (planned, generation 2, since {zone.state().updated_at})."
        " Wait for it to finish, or roll it back ('bluegreen rollback'), before starting a new one",
    ):
        acquire(zone.service(), RUN2, live_versions=V1, run_is_active=active)
    assert asked == [RUN1]
    state, _ = acquire(zone.service(), RUN2, live_versions=V1, run_is_active=lambda o: o != RUN1)
    assert state == zone.state() and state.service == "orders-api" and state.reason == "planned"


def test_acquire_refuses_a_hand_edited_split_of_another_run(zone):
    planned(zone)
    set_weights(zone, blue=90, green=10)
    with pytest.raises(StateError, match="changed outside bluegreen"):
        acquire(zone.service(), RUN2, live_versions=V1, run_is_active=always_active)


def test_a_weight_of_one_is_live(zone):
    set_weights(zone, blue=1)
    state, _ = acquire(zone.service(), RUN1, live_versions=V1, run_is_active=always_active)
    assert state.live == "blue" and zone.split() == {"blue": 100, "green": 0}


def test_acquire_needs_exactly_one_live_slot(zone):
    set_weights(zone, blue=50, green=50)
    with refused(
        TransitionRefused,
        "split blue 50 / green 50: both slots take traffic and no deployment owns it; give the slot serving "
        "production 100 by hand (or roll back), then retry",
    ):
        acquire(zone.service(), RUN1, live_versions=V1, run_is_active=always_active)
    set_weights(zone, blue=0, green=0)
    with refused(
        TransitionRefused,
        "split blue 0 / green 0: no slot is live (Route53 spreads traffic evenly when every weight is 0). Give the "
        "slot serving production 100 by hand, then retry",
    ):
        acquire(zone.service(), RUN1, live_versions=V1, run_is_active=always_active)

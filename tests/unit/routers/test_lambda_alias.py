"""LambdaAliasRouter against moto: the state's transitions move one live alias per function, by compare-and-swap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bluegreen_provider.hooks.lambda_alias import AliasConflict, LambdaAliasHook
from bluegreen_provider.routers import TrafficError
from bluegreen_provider.routers.lambda_alias import LambdaAliasRouter, alias_generation
from bluegreen_provider.state import Phase, StateError, TransitionRefused, abort, rollback, shift

from .conftest import FUNCTIONS, RUN1, V1, V2, planned


def test_canary_steps_route_the_candidate_share_to_its_version(world):
    svc = planned(world)
    outcome = shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert world.aliases() == {
        fn: {
            "version": "1",
            "weights": {"2": 0.1},
            "description": f"bluegreen orders-api generation {outcome.state.generation}: blue 90 / green 10",
        }
        for fn in FUNCTIONS
    }
    assert outcome.applied is not None and outcome.applied.changed
    shift(svc, RUN1, 50, previous_pct=10, serving=V2)
    assert {fn: a["weights"] for fn, a in world.aliases().items()} == {fn: {"2": 0.5} for fn in FUNCTIONS}
    assert world.state().split == {"blue": 50, "green": 50}
    assert svc.router.read_split() == {"blue": 50, "green": 50}
    assert world.weights() == {"blue": 100, "green": 0}  # the DNS record is not this router's


def test_promotion_points_the_alias_at_the_new_version_and_clears_routing(world):
    svc = planned(world)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    shift(svc, RUN1, 100, previous_pct=10, serving=V2, retention_seconds=3600)
    state = world.state()
    assert state.phase == Phase.RETAINED and state.live == "green"
    assert {fn: (a["version"], a["weights"]) for fn, a in world.aliases().items()} == {
        fn: ("2", {}) for fn in FUNCTIONS
    }
    assert svc.router.read_split() == {"blue": 0, "green": 100}


def test_rollback_clears_the_routing_at_once(world):
    svc = planned(world)
    shift(svc, RUN1, 50, previous_pct=0, serving=V2)
    rollback(svc, RUN1, "soak_50 failed")
    assert {fn: (a["version"], a["weights"]) for fn, a in world.aliases().items()} == {
        fn: ("1", {}) for fn in FUNCTIONS
    }
    assert world.state().phase == Phase.ROLLED_BACK


def test_emergency_rollback_after_promotion_points_back_at_the_retained_version(world):
    svc = planned(world)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    shift(svc, RUN1, 100, previous_pct=10, serving=V2, retention_seconds=3600)
    abort(svc, "oncall", "pager", retained_serving=lambda slot: V1 if slot == "blue" else V2)
    assert {fn: (a["version"], a["weights"]) for fn, a in world.aliases().items()} == {
        fn: ("1", {}) for fn in FUNCTIONS
    }
    assert world.state().live == "blue"


def test_a_crash_between_the_state_and_the_alias_is_reconciled_by_the_next_reader(world, monkeypatch):
    svc = planned(world)
    monkeypatch.setattr(LambdaAliasRouter, "apply", lambda self, state: (_ for _ in ()).throw(OSError("killed")))
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert world.state().split == {"blue": 90, "green": 10}
    assert {a["weights"].get("2") for a in world.aliases().values()} == {None}  # not applied yet
    monkeypatch.undo()
    snap = world.service().read()  # any reader: a stage, the callback, the CLI, the UI
    assert snap.split == {"blue": 90, "green": 10}
    assert {fn: a["weights"] for fn, a in world.aliases().items()} == {fn: {"2": 0.1} for fn in FUNCTIONS}
    assert {alias_generation(a["description"]) for a in world.aliases().values()} == {snap.state.generation}


def test_a_stale_applier_changes_nothing_once_a_rollback_applied(world):
    svc = planned(world)
    shifted = shift(svc, RUN1, 50, previous_pct=0, serving=V2)
    rolled = rollback(world.service(), RUN1, "callback")
    assert rolled.state.generation > shifted.state.generation
    late = world.service().router.apply(shifted.state)  # the shift's applier, late
    assert not late.changed and f"newer generation {rolled.state.generation}" in late.detail
    assert {fn: (a["version"], a["weights"]) for fn, a in world.aliases().items()} == {
        fn: ("1", {}) for fn in FUNCTIONS
    }


def test_an_alias_changed_since_it_was_read_refuses_the_update(world):
    hook = LambdaAliasHook(aws_conn_id=None)
    read = hook.get_alias_routing("orders", "production")
    world.lam.update_alias(FunctionName="orders", Name="production", Description="by hand")
    with pytest.raises(AliasConflict):
        hook.route_alias(read, version="1", weights={"2": 0.5}, description="stale")
    assert world.alias("orders") == {"version": "1", "weights": {}, "description": "by hand"}


def test_the_applier_reads_again_after_losing_the_alias_race(world, monkeypatch):
    svc = planned(world)
    real = LambdaAliasHook.route_alias
    raced = []

    def racing(self, current, **kwargs):
        if not raced:  # someone moves the alias between our read and our write
            raced.append(current.function_name)
            world.lam.update_alias(FunctionName=current.function_name, Name="production", Description="other")
        return real(self, current, **kwargs)

    monkeypatch.setattr(LambdaAliasHook, "route_alias", racing)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert raced and {fn: a["weights"] for fn, a in world.aliases().items()} == {fn: {"2": 0.1} for fn in FUNCTIONS}


def test_an_alias_moved_by_hand_at_the_current_generation_stops_the_run(world):
    svc = planned(world)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    desc = world.alias("orders")["description"]
    world.lam.update_alias(
        FunctionName="orders",
        Name="production",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.9}},
        Description=desc,
    )
    with pytest.raises(StateError, match="Lambda alias production reads blue 10 / green 90"):
        shift(world.service(), RUN1, 50, previous_pct=10, serving=V2)
    assert world.alias("orders")["weights"] == {"2": 0.9}
    rollback(world.service(), RUN1, "by hand")  # rollback still wins
    assert world.alias("orders")["weights"] == {}


def test_a_missing_live_alias_is_refused_before_anything_changes(world):
    world.lam.delete_alias(FunctionName="gallery", Name="production")
    with pytest.raises(TrafficError, match=r"\['gallery'\] have no alias 'production'"):
        world.service().read()
    assert world.state() is None


def test_without_state_the_live_slot_is_the_one_whose_alias_serves_the_live_version(world):
    assert world.service().router.read_split() == {"blue": 100, "green": 0}
    for fn in FUNCTIONS:
        world.lam.update_alias(FunctionName=fn, Name="production", FunctionVersion="2")
    assert world.service().router.read_split() == {"blue": 0, "green": 100}


def test_a_shift_in_flight_when_the_rollback_lands_changes_nothing_and_says_why(world):
    svc = planned(world)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    started = datetime.now(UTC)  # shift_50 started, then the failure callback's rollback landed
    rollback(world.service(), RUN1, "soak_10 failed")
    with pytest.raises(TransitionRefused, match="was rolled back at"):
        shift(svc, RUN1, 50, previous_pct=10, serving=V2, started_at=started)
    assert {fn: a["weights"] for fn, a in world.aliases().items()} == {fn: {} for fn in FUNCTIONS}


def test_verify_reads_the_live_aliases(world):
    svc = planned(world)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert svc.router.verify({"blue": 90, "green": 10}) is None
    assert svc.router.verify({"blue": 0, "green": 100}) == (
        "Lambda alias production reads blue 90 / green 10, expected blue 0 / green 100"
    )


def test_an_applier_overtaken_by_a_newer_transition_leaves_the_aliases_alone(world, monkeypatch):
    svc = planned(world)
    applied: list[int] = []
    real_apply = LambdaAliasRouter.apply
    monkeypatch.setattr(LambdaAliasRouter, "apply", lambda self, state: applied.append(state.generation))
    shift_state = shift(svc, RUN1, 50, previous_pct=0, serving=V2).state  # landed, applier slow
    rollback(svc, RUN1, "soak_50 failed")  # lands a newer generation, its applier slow too
    monkeypatch.setattr(LambdaAliasRouter, "apply", real_apply)
    late = svc.router.apply(shift_state)  # the shift's applier wakes up after the rollback landed
    assert not late.changed and "newer generation" in late.detail
    assert {a["weights"].get("2") for a in world.aliases().values()} == {None}  # 50 % never served
    snap = world.service().read()  # the rollback's state is applied by the next reader
    assert snap.state.phase == Phase.ROLLED_BACK
    assert {fn: (a["version"], a["weights"]) for fn, a in world.aliases().items()} == {
        fn: ("1", {}) for fn in FUNCTIONS
    }
    assert applied[-1] == shift_state.generation + 1  # the rollback's own applier ran (and did nothing)

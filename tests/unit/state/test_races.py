"""Two actors racing over one service, in randomized interleavings of their Route53 reads and writes.

Every read of the state and every change batch is a step. A seeded scheduler lets exactly one
actor's thread take its next step at a time, chosen at random, so each seed is one reproducible
interleaving. After each: the split is a declared step or 100/0, Route53 holds the split the
state declares, and at most one run believes it owns the service.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.state import (
    Phase,
    ServiceState,
    TransitionRefused,
    abort,
    acquire,
    record_release,
    retire,
    rollback,
    shift,
)

INTERLEAVINGS = 75  # per pair; four pairs
V1 = {"orders": "1", "gallery": "1"}
V2 = {"orders": "2", "gallery": "2"}
DECLARED = [{"blue": 100 - p, "green": p} for p in (0, 10, 50, 100)]


class Scheduler:
    """Lets one actor at a time past its next step; the order comes from the seed."""

    def __init__(self, seed: int, actors: list[str]) -> None:
        self.rng = random.Random(seed)
        self.cond = threading.Condition()
        self.waiting: set[str] = set()
        self.running = set(actors)
        self.turn: str | None = None
        self.steps: list[str] = []

    def step(self, actor: str) -> None:
        with self.cond:
            self.waiting.add(actor)
            self.cond.notify_all()
            while self.turn != actor:
                self.cond.wait(timeout=10)
            self.turn = None
            self.waiting.discard(actor)
            self.steps.append(actor)

    def done(self, actor: str) -> None:
        with self.cond:
            self.running.discard(actor)
            self.cond.notify_all()

    def run(self) -> None:
        with self.cond:
            while self.running:
                # Wait until every live actor is parked at a step (or finished), then pick one.
                while self.running and (self.turn is not None or self.waiting != self.running):
                    self.cond.wait(timeout=10)
                if not self.running:
                    break
                self.turn = self.rng.choice(sorted(self.waiting))
                self.cond.notify_all()


_HOOKS: dict[str, Route53Hook] = {}


def hook(actor: str) -> Route53Hook:
    """One hook per actor for the whole module: building a boto3 client costs more than a transition."""
    if actor not in _HOOKS:
        _HOOKS[actor] = Route53Hook(aws_conn_id=None)
    return _HOOKS[actor]


class GatedHook:
    """The actor's hook, whose change batches wait for the scheduler."""

    def __init__(self, real: Route53Hook, scheduler: Scheduler, actor: str) -> None:
        self._real, self._scheduler, self._actor = real, scheduler, actor

    def change_batch(self, *args, **kwargs):
        self._scheduler.step(self._actor)
        return self._real.change_batch(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._real, name)


class GatedService(ServiceState):
    """A ServiceState whose reads and change batches wait for the scheduler."""

    def __init__(self, base: ServiceState, scheduler: Scheduler, actor: str) -> None:
        super().__init__(GatedHook(hook(actor), scheduler, actor), base.zone_id, base.spec)  # type: ignore[arg-type]
        self._scheduler, self._actor = scheduler, actor

    def read(self):
        self._scheduler.step(self._actor)
        return super().read()


def race(zone, seed: int, actors: dict[str, Callable[[ServiceState], object]]) -> dict[str, object]:
    scheduler = Scheduler(seed, list(actors))
    results: dict[str, object] = {}

    def body(name: str, fn: Callable[[ServiceState], object]) -> None:
        try:
            results[name] = fn(GatedService(zone.base, scheduler, name))
        except TransitionRefused as err:  # NothingToDo included
            results[name] = err
        except Exception as err:  # pragma: no cover - reported by the assertion below
            results[name] = err
        finally:
            scheduler.done(name)

    threads = [threading.Thread(target=body, args=item, daemon=True) for item in actors.items()]
    for thread in threads:
        thread.start()
    scheduler.run()
    for thread in threads:
        thread.join(timeout=30)
    unexpected = {k: v for k, v in results.items() if isinstance(v, Exception) and not isinstance(v, TransitionRefused)}
    assert not unexpected, f"seed {seed}: {unexpected}"
    assert zone.split() in DECLARED, f"seed {seed}: stray split {zone.split()} after {scheduler.steps}"
    assert zone.state().split == zone.split(), f"seed {seed}: state and Route53 disagree"
    return results


def at_10(zone, owner="deploy/run1"):
    svc = zone.base
    acquire(svc, owner, live_versions=V1, run_is_active=lambda _: True)
    record_release(svc, owner, V2)
    shift(svc, owner, 10, previous_pct=0, serving=V2)


@pytest.fixture(scope="module")
def shared_zone():
    """One moto zone for every interleaving of this module (reset before each)."""
    from moto import mock_aws

    from tests.unit.state.conftest import Zone

    with mock_aws():
        zone = Zone()
        zone.base = ServiceState(hook("setup"), zone.zone_id, zone.spec)
        yield zone
    _HOOKS.clear()


@pytest.fixture
def fresh_zone(shared_zone):
    """Reset the zone between interleavings: delete the state record and put blue back to 100."""
    zone = shared_zone

    def reset() -> None:
        records = zone.records()
        changes = [{"Action": "DELETE", "ResourceRecordSet": r} for r in records if r["Type"] == "TXT"]
        for r in records:
            if "SetIdentifier" in r:
                changes.append({"Action": "DELETE", "ResourceRecordSet": r})
                changes.append(
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {**r, "Weight": 100 if r["SetIdentifier"] == "blue" else 0},
                    }
                )
        zone.client.change_resource_record_sets(HostedZoneId=zone.zone_id, ChangeBatch={"Changes": changes})

    zone.reset = reset
    return zone


@pytest.mark.parametrize("seed", range(INTERLEAVINGS))
def test_shift_against_rollback_always_ends_on_live(fresh_zone, seed):
    zone = fresh_zone
    zone.reset()
    at_10(zone)
    manual = seed % 2 == 0
    started = datetime.now(UTC)
    results = race(
        zone,
        seed,
        {
            "shift": lambda svc: shift(svc, "deploy/run1", 50, previous_pct=10, serving=V2, started_at=started),
            "rollback": (
                (lambda svc: abort(svc, "cli:oncall", "manual", retained_serving=lambda _: V1))
                if manual
                else (lambda svc: rollback(svc, "deploy/run1", "soak_10 failed"))
            ),
        },
    )
    assert not isinstance(results["rollback"], Exception), f"seed {seed}: the rollback lost: {results['rollback']}"
    assert zone.split() == {"blue": 100, "green": 0}, f"seed {seed}"
    assert zone.state().phase == (Phase.ABORTED if manual else Phase.ROLLED_BACK)


@pytest.mark.parametrize("seed", range(INTERLEAVINGS))
def test_plan_against_plan_leaves_one_owner(fresh_zone, seed):
    zone = fresh_zone
    zone.reset()

    def plan(owner):
        return lambda svc: acquire(svc, owner, live_versions=V1, run_is_active=lambda _: True)[0]

    results = race(zone, seed, {"run1": plan("deploy/run1"), "run2": plan("deploy/run2")})
    winners = [name for name, r in results.items() if not isinstance(r, Exception)]
    assert len(winners) == 1, f"seed {seed}: {results}"
    assert zone.state().owner == f"deploy/{winners[0]}"
    loser = next(r for r in results.values() if isinstance(r, Exception))
    assert f"deploy/{winners[0]}" in str(loser)


@pytest.mark.parametrize("seed", range(INTERLEAVINGS))
def test_rollback_against_rollback_restores_once(fresh_zone, seed):
    zone = fresh_zone
    zone.reset()
    at_10(zone)
    results = race(
        zone,
        seed,
        {
            "callback": lambda svc: rollback(svc, "deploy/run1", "soak_10 failed"),
            "teardown": lambda svc: rollback(svc, "deploy/run1", "rollback task"),
            "button": lambda svc: abort(svc, "cli:oncall", "manual", retained_serving=lambda _: V1),
        },
    )
    assert zone.split() == {"blue": 100, "green": 0}
    assert sum(not isinstance(r, Exception) and r.split_changed for r in results.values()) == 1, f"seed {seed}"


@pytest.mark.parametrize("seed", range(INTERLEAVINGS))
def test_teardown_against_a_new_deployment(fresh_zone, seed):
    zone = fresh_zone
    zone.reset()
    at_10(zone)
    shift(zone.base, "deploy/run1", 100, previous_pct=10, serving=V2, retention_seconds=1)
    later = datetime.now(UTC) + timedelta(hours=1)
    results = race(
        zone,
        seed,
        {
            "teardown": lambda svc: retire(svc, "deploy/run1", now=later),
            "plan": lambda svc: acquire(svc, "deploy/run2", live_versions=V2, run_is_active=lambda _: True)[0],
        },
    )
    assert not isinstance(results["plan"], Exception), f"seed {seed}: {results['plan']}"
    state = zone.state()
    assert state.owner == "deploy/run2" and state.phase == Phase.PLANNED and state.retained is None
    assert zone.split() == {"blue": 0, "green": 100}

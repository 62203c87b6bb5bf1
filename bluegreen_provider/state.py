"""One deployment state per service, changed only by compare-and-swap on Route53 itself.

The state lives in a TXT record beside the record it protects (``_bluegreen.<record name>``): which
run owns the service, a generation number, the phase, the declared split, which slot is live and
which is the candidate, what each slot must serve, the retained release with its deadline, and
each slot's Route53 health check.

Every transition is one Route53 change batch that DELETEs the state record and, with the Route53
router, both weighted sets with their exact current values and CREATEs their successors: the
weights and, only while every weight is > 0, each set's health check (so Route53 can never fail
over to a weight-0 set). How traffic moves is the service's router's business
(:mod:`bluegreen_provider.routers`); a router whose split is not in the batch applies it
once the batch landed, and every read reconciles it to the declared split. Route53
applies a batch all or nothing and rejects a DELETE whose values do not match, so a transition
either lands on exactly the state and split it decided on, or changes nothing; the loser re-reads
and decides again. A rollback decides "roll back" from any split its run owns, so it always wins
over a shift; nothing can overwrite a newer generation.

The transitions are the named functions below; the operators, the failure callback, the CLI and the
UI call them and nothing else changes traffic.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bluegreen_provider.plan import PlanError
from bluegreen_provider.routers import Traffic

if TYPE_CHECKING:
    from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.routers import Applied, TrafficRouter
    from bluegreen_provider.spec import DeploymentSpec

log = logging.getLogger(__name__)

STATE_PREFIX = "_bluegreen."
STATE_TTL = 60
_TXT_STRING = 255  # characters per TXT string
_TXT_VALUE = 4000  # characters per TXT record value
_ATTEMPTS = 8


class Phase(StrEnum):
    """Where a service's deployment stands."""

    PLANNED = "planned"  # a run owns the service; the live slot has 100 %
    SHIFTING = "shifting"  # the candidate takes a declared canary share
    HELD = "held"  # promotion refused; the split stays where it is
    PROMOTED = "promoted"  # the candidate is live; nothing is retained
    RETAINED = "retained"  # promoted; the previous release is kept for emergency rollback until a deadline
    RETIRED = "retired"  # promoted; the retention ended and the old slot was retired
    ROLLED_BACK = "rolled_back"  # the run put 100 % back on its live slot (it may resume)
    ABORTED = "aborted"  # a person rolled back; the run never moves traffic again


ACTIVE = frozenset({Phase.PLANNED, Phase.SHIFTING, Phase.HELD})


class StateError(PlanError):
    """The state record is unreadable or does not match Route53; a person must look."""


class TransitionRefused(PlanError):
    """The caller may not make this change now; nothing was changed. The message says why and what to do."""


class NothingToDo(TransitionRefused):
    """The change is already in place, or there is nothing to roll back; nothing was changed."""


@dataclass(frozen=True)
class Retained:
    """The previous release kept in ``slot`` for an emergency rollback until ``until``."""

    slot: str
    until: str
    versions: dict[str, str]
    owner: str

    @property
    def until_dt(self) -> datetime:
        return datetime.fromisoformat(self.until)

    def active(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) < self.until_dt


@dataclass(frozen=True)
class DeploymentState:
    """The service's state as recorded in Route53. ``split`` is by set identifier."""

    service: str
    generation: int
    phase: Phase
    owner: str
    live: str
    candidate: str
    split: dict[str, int]
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    retained: Retained | None = None
    reason: str = ""
    updated_at: str = ""
    # When the owner took the service: an alarm whose ALARM episode began later is this deployment's.
    started_at: str = ""
    # Slot name -> the Route53 health check the health stage created for it. A check is on the slot's
    # weighted set only while every set has weight > 0 (see ServiceState._changes).
    health_checks: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE

    def to_json(self) -> str:
        data = asdict(self)
        data["phase"] = str(self.phase)
        return json.dumps({"v": 1, **data}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeploymentState:
        try:
            data = json.loads(text)
            data.pop("v", None)
            retained = data.pop("retained", None)
            return cls(
                **{**data, "phase": Phase(data["phase"])},
                retained=Retained(**retained) if retained else None,
            )
        except (ValueError, TypeError, KeyError) as err:
            raise StateError(f"the deployment state record cannot be read ({err}): {text[:200]!r}") from err


# -- TXT encoding ------------------------------------------------------------------------------------


def encode_txt(text: str) -> str:
    """A TXT record value: quoted strings of at most 255 characters, ``"`` and ``\\`` escaped."""
    parts: list[str] = []
    current = ""
    for char in text:
        piece = "\\" + char if char in '"\\' else char
        if len(current) + len(piece) > _TXT_STRING:
            parts.append(current)
            current = ""
        current += piece
    parts.append(current)
    value = " ".join(f'"{p}"' for p in parts)
    if len(value) > _TXT_VALUE:
        raise StateError(f"the deployment state is {len(value)} characters; Route53 allows {_TXT_VALUE}")
    return value


def decode_txt(value: str) -> str:
    """The text of a TXT record value written by :func:`encode_txt` (quoted strings, concatenated)."""
    out: list[str] = []
    inside = escaped = False
    for char in value:
        if escaped:
            out.append(char)
            escaped = False
        elif inside and char == "\\":
            escaped = True
        elif char == '"':
            inside = not inside
        elif inside:
            out.append(char)
    return "".join(out)


def owner_of(dag_id: str, run_id: str) -> str:
    """The owner string of a DAG run, kept exactly (any length, any character)."""
    return f"{dag_id}/{run_id}"


def state_record_name(spec: DeploymentSpec) -> str:
    return STATE_PREFIX + spec.record_name.rstrip(".").lower() + "."


# -- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What AWS holds now: the state (None before the first deployment) and the traffic.

    ``sets`` are the Route53 weighted sets when the router keeps the split there (empty otherwise);
    ``traffic`` is what the router read (None: the sets' weights are the split).
    """

    state: DeploymentState | None
    state_record: dict[str, Any] | None
    sets: dict[str, dict[str, Any]]
    traffic: Traffic | None = None

    @property
    def split(self) -> dict[str, int]:
        if self.traffic is not None:
            return dict(self.traffic.split)
        return {s: int(r["Weight"]) for s, r in self.sets.items()}


def declared_generation(route53: Route53Hook, zone_id: str, spec: DeploymentSpec) -> int | None:
    """The generation the state record declares now (None without a record): one listing, no traffic read."""
    name = state_record_name(spec)
    records = route53.get_record_sets(zone_id, [(name, "TXT")])[(name, "TXT")]
    if not records:
        return None
    text = decode_txt(" ".join(v["Value"] for v in records[0].get("ResourceRecords", [])))
    return DeploymentState.from_json(text).generation


class ServiceState:
    """The state of one service's record: read it, and change it by compare-and-swap.

    :param router: how traffic moves (:mod:`bluegreen_provider.routers`); by default the one
        the spec names, reaching Lambda through ``lambdas`` (or the Route53 hook's connection).
    """

    def __init__(
        self,
        route53: Route53Hook,
        zone_id: str,
        spec: DeploymentSpec,
        *,
        router: TrafficRouter | None = None,
        lambdas: LambdaAliasHook | None = None,
    ) -> None:
        from bluegreen_provider.routers import make_router

        self.route53 = route53
        self.zone_id = zone_id
        self.spec = spec
        self.name = state_record_name(spec)
        self.router = router or make_router(spec, route53, zone_id, lambdas=lambdas)

    @property
    def set_ids(self) -> list[str]:
        return [s.set_identifier for s in self.spec.slots.values()]

    def read(self) -> Snapshot:
        """One listing of the state record (and the router's records), then the traffic as the router reads it.

        A router whose traffic is applied after the state transition brings it to the declared split
        here, if a landed transition was not applied yet (:meth:`TrafficRouter.reconcile`).
        """
        keys = [*self.router.listed_records(), (self.name, "TXT")]
        found = self.route53.get_record_sets(self.zone_id, keys)
        records = found[(self.name, "TXT")]
        state: DeploymentState | None = None
        record = None
        if records:
            record = records[0]
            text = decode_txt(" ".join(v["Value"] for v in record.get("ResourceRecords", [])))
            state = DeploymentState.from_json(text)
        traffic = self.router.reconcile(state, self.router.observe(found, state))
        return Snapshot(state, record, dict(traffic.records), traffic)

    def state(self) -> DeploymentState | None:
        return self.read().state

    def describe(self, split: Mapping[str, int]) -> str:
        """A split as people read it: 'blue 90 / green 10'."""
        names = {s.set_identifier: s.name for s in self.spec.slots.values()}
        return " / ".join(f"{names.get(k, k)} {v}" for k, v in sorted(split.items()))

    def weights(self, candidate: str, candidate_pct: int) -> dict[str, int]:
        return self.spec.route53_weights(candidate, candidate_pct)

    def transition(
        self, decide: Callable[[Snapshot], DeploymentState], *, what: str, attempts: int = _ATTEMPTS
    ) -> Outcome:
        """Read, decide, and swap; on a lost race read and decide again.

        ``decide`` returns the next state (its split is what Route53 will hold) or raises
        :class:`TransitionRefused` / :class:`NothingToDo`. The generation is bumped here.

        A batch can land while its answer is lost (a dropped connection): botocore then sends it
        again, and the repeat is refused (``InvalidChangeBatch``, its DELETEs are stale), or botocore
        gives up. Either way the state is read again: if Route53 holds exactly the state this batch
        wrote, it landed, and the transition succeeds with it (see :meth:`_confirm_landed`). A lost
        race, or a landed change superseded at once, decides again; any other error is raised. A
        change is never applied twice.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        from bluegreen_provider.hooks.route53 import ChangeConflict

        last_conflict = ""
        snap: Snapshot | None = None
        for _ in range(attempts):
            if snap is None:
                snap = self.read()
            nxt = decide(snap)
            generation = (snap.state.generation if snap.state else 0) + 1
            nxt = replace(nxt, generation=generation, updated_at=_now())
            changes = self._changes(snap, nxt)
            comment = f"bluegreen {self.spec.service} gen {generation}: {what} ({nxt.owner})"
            try:
                change_id = self.route53.change_batch(self.zone_id, changes, comment=comment)
            except (ChangeConflict, ClientError, BotoCoreError) as err:
                # A conflict, or botocore gave up (throttled, 5xx or dropped on every attempt): either
                # way an earlier attempt may have landed with its answer lost.
                after = self.read()
                landed = self._confirm_landed(after, nxt, what)
                if landed is None:
                    if not isinstance(err, ChangeConflict) and not _holds(after, nxt):
                        raise  # it did not land: the error stands
                    last_conflict = str(err)
                    log.info("%s lost a race on %s (%s); reading again", what, self.spec.record_name, err)
                    # Decide on this read, unless it held this very state: its confirmation then lost a race.
                    snap = None if _holds(after, nxt) else after
                    continue
                change_id = landed
            applied = self._apply(nxt, what)
            log.info(
                "%s: %s generation %d, %s, %s (change %s)",
                what,
                self.spec.service,
                generation,
                nxt.phase,
                self.describe(nxt.split),
                change_id,
            )
            return Outcome(state=nxt, before=snap, change_id=change_id, applied=applied)
        raise TransitionRefused(
            f"{what}: Route53 kept rejecting the change after {attempts} attempts ({last_conflict}); "
            f"someone else keeps changing {self.spec.record_name}"
        )

    def _apply(self, nxt: DeploymentState, what: str) -> Applied | None:
        """After the swap landed: the router applies the traffic it does not keep in the batch.

        A failure here leaves the state declared and the traffic behind it; the next read (any stage,
        the callback, the CLI, the UI) reconciles it, so it is logged and the transition stands.
        """
        try:
            return self.router.apply(nxt)
        except Exception:
            log.exception(
                "%s landed as generation %d but its traffic was not applied yet; the next read applies it",
                what,
                nxt.generation,
            )
            return None

    def _confirm_landed(self, snap: Snapshot, nxt: DeploymentState, what: str) -> str | None:
        """If Route53 holds exactly ``nxt`` (its batch landed, the answer was lost), a change id to wait for.

        The landed batch's own id was in the lost answer and Route53 cannot be asked for it, so this
        submits one more compare-and-swap that DELETEs the state record as read and CREATEs it
        unchanged: it proves ``nxt`` is still current and yields a change id. Route53 processes a
        zone's change batches one after another, so once this one is INSYNC so is the landed one.
        None when Route53 holds another state, or another change came in meanwhile (that caller
        then reads again and decides again).
        """
        from bluegreen_provider.hooks.route53 import ChangeConflict

        record = snap.state_record
        if record is None or not _holds(snap, nxt):
            return None
        comment = f"bluegreen {self.spec.service} gen {nxt.generation}: {what} landed, answer lost ({nxt.owner})"
        try:
            change_id = self.route53.change_batch(
                self.zone_id, [("DELETE", record), ("CREATE", record)], comment=comment
            )
        except ChangeConflict:
            log.info("%s landed on %s but was superseded at once; reading again", what, self.spec.record_name)
            return None
        log.warning(
            "%s landed on %s but its answer was lost; confirmed by change %s", what, self.spec.record_name, change_id
        )
        return change_id

    def _changes(self, snap: Snapshot, nxt: DeploymentState) -> list[tuple[str, dict]]:
        changes: list[tuple[str, dict]] = []
        if snap.state_record is not None:
            changes.append(("DELETE", snap.state_record))
        changes.append(
            (
                "CREATE",
                {
                    "Name": self.name,
                    "Type": "TXT",
                    "TTL": STATE_TTL,
                    "ResourceRecords": [{"Value": encode_txt(nxt.to_json())}],
                },
            )
        )
        traffic = snap.traffic if snap.traffic is not None else Traffic(snap.split, dict(snap.sets))
        changes += self.router.changes(traffic, nxt, self.attached_health_checks(nxt))
        return changes

    def attached_health_checks(self, state: DeploymentState) -> dict[str, str]:
        """Set identifier -> the health check its weighted set carries in ``state``.

        Only while every set has weight > 0 (the canary steps). Route53 answers with a weight-0 set
        once every set of weight > 0 is unhealthy, and a set without a health check is always
        healthy; so at 100/0 a check on the live set would send all traffic to the unvetted
        candidate or the retired slot the moment it fails. With no check on any set, the weight-0
        set is never chosen. Written in the same change batch as the weights.
        """
        if not all(weight > 0 for weight in state.split.values()):
            return {}
        return {
            slot.set_identifier: state.health_checks[name]
            for name, slot in self.spec.slots.items()
            if state.health_checks.get(name)
        }


@dataclass(frozen=True)
class Outcome:
    """A transition that landed: the new state, what Route53 held before, and the change to wait for."""

    state: DeploymentState
    before: Snapshot
    change_id: str
    # What the router did after the swap (a router whose split is not in the batch); None otherwise.
    applied: Applied | None = None

    @property
    def split_changed(self) -> bool:
        return self.before.split != self.state.split


def _holds(snap: Snapshot, state: DeploymentState) -> bool:
    """Route53 holds exactly ``state`` (same generation, same write time: the batch that wrote it)."""
    return snap.state is not None and snap.state.to_json() == state.to_json()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- guards ------------------------------------------------------------------------------------------


def _who(state: DeploymentState) -> str:
    return f"run {state.owner} ({state.phase}, generation {state.generation}, since {state.updated_at})"


def _require_declared(svc: ServiceState, snap: Snapshot) -> DeploymentState:
    state = snap.state
    if state is None:
        raise TransitionRefused(
            f"{svc.spec.service} has no deployment state record ({svc.name}): no deployment has planned yet"
        )
    if snap.split != state.split:
        raise StateError(
            f"{svc.router.source} reads {svc.describe(snap.split)} but the deployment state "
            f"(generation {state.generation}) "
            f"declares {svc.describe(state.split)}: the record was changed outside bluegreen. Put the weights "
            f"back by hand to the declared split, or roll back with 'bluegreen rollback'"
        )
    return state


def _require_owner(svc: ServiceState, state: DeploymentState, owner: str) -> None:
    if state.owner != owner:
        raise TransitionRefused(
            f"{_who(state)} owns {svc.spec.service} now; this run ({owner}) must not change it. "
            f"Traffic is left as it is ({svc.describe(state.split)})"
        )
    if state.phase == Phase.ABORTED:
        raise TransitionRefused(
            f"this deployment ({owner}) was rolled back by hand at {state.updated_at} ({state.reason}); it will "
            f"not move traffic again. Start a new deployment run"
        )
    if state.phase in (Phase.PROMOTED, Phase.RETAINED, Phase.RETIRED):
        raise TransitionRefused(
            f"this deployment ({owner}) already promoted {state.live} ({state.phase}); it will not move traffic "
            f"again. Start a new deployment run"
        )


def candidate_mismatch(state: DeploymentState, serving: Mapping[str, str | None]) -> dict[str, str]:
    """Functions whose candidate alias does not serve the version this run recorded."""
    recorded = state.versions.get(state.candidate, {})
    if not recorded:
        return {"*": "no release recorded for the candidate yet (deploy_green has not run)"}
    return {
        fn: f"recorded {version}, alias serves {serving.get(fn) or 'nothing'}"
        for fn, version in recorded.items()
        if serving.get(fn) != version
    }


# -- transitions -------------------------------------------------------------------------------------


def acquire(
    svc: ServiceState,
    owner: str,
    *,
    live_versions: Mapping[str, str],
    run_is_active: Callable[[str], bool],
    dry_run: bool = False,
) -> tuple[DeploymentState, list[str]]:
    """Take ownership of the service for a new deployment (the plan). Returns (state, warnings).

    Allowed when no run is active, or the active owner's run is over in Airflow and its split is
    clean (100 % on its live slot). The live slot is the one with all the traffic. Ends a retention
    (the candidate slot is the retained one): the plan says so. The owner's own active state is
    resumed unchanged.
    """
    warnings: list[str] = []

    def decide(snap: Snapshot) -> DeploymentState:
        warnings.clear()
        state = snap.state
        if state is not None and state.split != snap.split:
            _require_declared(svc, snap)
        if state is not None and state.owner == owner:
            if state.active:
                raise _Resume(state)
            _require_owner(svc, state, owner)  # aborted or promoted: refuse
        if state is not None and state.active and state.owner != owner:
            clean = snap.split == svc.weights(state.candidate, 0)
            if run_is_active(state.owner) or not clean:
                hint = "" if clean else f" with traffic at {svc.describe(snap.split)}"
                raise TransitionRefused(
                    f"another deployment owns this service: {_who(state)}{hint}. Wait for it to finish, "
                    f"or roll it back ('bluegreen rollback'), before starting a new one"
                )
            warnings.append(f"took over from {state.owner}, which is no longer running (traffic was clean)")
        live = _live_slot(svc, snap)
        candidate = svc.spec.other_slot(live)
        if state is not None and state.retained is not None and state.retained.active():
            warnings.append(
                f"slot {candidate} still holds the previous release retained by {state.retained.owner} until "
                f"{state.retained.until} for emergency rollback; this deployment ends that retention"
            )
        versions = {live: dict(live_versions)}
        started_at = _now()
        if state is not None and state.owner == owner and state.live == live:
            # Clearing a stage clears its setup (the plan) too: keep the release this run recorded.
            versions = {**state.versions, live: dict(live_versions)}
            started_at = state.started_at or started_at
        return DeploymentState(
            service=svc.spec.service,
            generation=0,
            phase=Phase.PLANNED,
            owner=owner,
            live=live,
            candidate=candidate,
            split=svc.weights(candidate, 0),
            versions=versions,
            reason="planned",
            started_at=started_at,
            # A slot keeps its check across deployments until its health stage replaces it or teardown retires it.
            health_checks=dict(state.health_checks) if state is not None else {},
        )

    try:
        if dry_run:
            return decide(svc.read()), warnings
        return svc.transition(decide, what="plan").state, warnings
    except _Resume as resume:
        return resume.state, [f"this run already owns {svc.spec.service}: resuming with {resume.state.live} live"]


class _Resume(Exception):
    def __init__(self, state: DeploymentState) -> None:
        self.state = state


def _live_slot(svc: ServiceState, snap: Snapshot) -> str:
    with_traffic = [s.name for s in svc.spec.slots.values() if snap.split[s.set_identifier] > 0]
    if len(with_traffic) == 1:
        return with_traffic[0]
    shown = svc.describe(snap.split)
    if with_traffic:
        raise TransitionRefused(
            f"split {shown}: both slots take traffic and no deployment owns it; give the slot serving "
            f"production 100 by hand (or roll back), then retry"
        )
    raise TransitionRefused(
        f"split {shown}: no slot is live (Route53 spreads traffic evenly when every weight is 0). Give the "
        f"slot serving production 100 by hand, then retry"
    )


def record_release(svc: ServiceState, owner: str, versions: Mapping[str, str]) -> DeploymentState:
    """Record the versions the candidate slot now serves (deploy). Re-establishes a run rolled back by itself."""

    def decide(snap: Snapshot) -> DeploymentState:
        state = _require_declared(svc, snap)
        _require_owner(svc, state, owner)
        if snap.split != svc.weights(state.candidate, 0):
            raise TransitionRefused(
                f"not releasing into {state.candidate}: it takes live traffic ({svc.describe(snap.split)}). "
                f"Roll back first (candidate weight 0), then deploy"
            )
        if state.phase == Phase.PLANNED and state.versions.get(state.candidate) == dict(versions):
            raise NothingToDo(f"the candidate {state.candidate} already serves this release")
        return replace(
            state,
            phase=Phase.PLANNED,
            versions={**state.versions, state.candidate: dict(versions)},
            reason="release deployed",
        )

    try:
        return svc.transition(decide, what="deploy").state
    except NothingToDo:
        return svc.read().state  # type: ignore[return-value]


def check_may_release(svc: ServiceState, owner: str) -> DeploymentState:
    """Before changing the candidate's aliases: this run owns the service and the candidate has no traffic."""
    snap = svc.read()
    state = _require_declared(svc, snap)
    _require_owner(svc, state, owner)
    if snap.split != svc.weights(state.candidate, 0):
        raise TransitionRefused(
            f"refusing to change slot {state.candidate}: it takes live traffic ({svc.describe(snap.split)}). "
            f"Changing code under live traffic is not a release; roll back first (candidate weight 0), then deploy"
        )
    return state


def record_health_check(svc: ServiceState, owner: str, slot: str, check_id: str) -> Outcome | None:
    """Record the Route53 health check of the candidate ``slot`` (the health stage). None when already recorded.

    The check is written to the slot's weighted set only while every set has weight > 0, by the same
    change batch that moves the weights (:meth:`ServiceState.attached_health_checks`), so recording it
    attaches nothing now: the candidate is at weight 0. The outcome's ``before`` state names the check
    it replaces, for the caller to delete.

    Guards: the run owns the service, the split is the declared one, ``slot`` is the candidate, and
    a new check only while the candidate takes no traffic (the same check again is a no-op at any step).
    """
    if slot not in svc.spec.slots:
        raise ValueError(f"unknown slot {slot!r}; the slots are {sorted(svc.spec.slots)}")
    if not isinstance(check_id, str) or not check_id:
        raise ValueError(f"a health check id must be a non-empty string, got {check_id!r}")

    def decide(snap: Snapshot) -> DeploymentState:
        state = _require_declared(svc, snap)
        _require_owner(svc, state, owner)
        if slot != state.candidate:
            raise TransitionRefused(
                f"not recording a health check for {slot}: it is live; the candidate is {state.candidate}"
            )
        if state.health_checks.get(slot) == check_id:  # a re-run of the health stage, also mid-canary
            raise NothingToDo(f"health check {check_id} already recorded for {slot}")
        if snap.split != svc.weights(state.candidate, 0):
            raise TransitionRefused(
                f"not recording a health check for {slot}: it takes live traffic ({svc.describe(snap.split)}). "
                f"Roll back first (candidate weight 0), then check its health"
            )
        return replace(state, health_checks={**state.health_checks, slot: check_id})

    try:
        return svc.transition(decide, what=f"health check of {slot}")
    except NothingToDo:
        return None


def shift(
    svc: ServiceState,
    owner: str,
    candidate_pct: int,
    *,
    previous_pct: int,
    serving: Mapping[str, str | None],
    retention_seconds: int = 0,
    started_at: datetime | None = None,
) -> Outcome | None:
    """Move the candidate to ``candidate_pct`` (100 promotes). None when the split is already there.

    Guards: the run owns the service, the phase allows the step, the split is this run's previous
    declared step (or 100/0 on its live slot after its own rollback, or already this step), and the
    candidate aliases serve exactly the versions recorded for this run.

    :param started_at: when the calling stage started. A run resumes after its own rollback only
        when that rollback happened before the stage started (a cleared task); a rollback that lands
        while a shift is in flight always wins.
    """
    started = started_at or datetime.now(UTC)
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    first_generation: list[int] = []

    def decide(snap: Snapshot) -> DeploymentState:
        state = _require_declared(svc, snap)
        promoted = state.phase in (Phase.PROMOTED, Phase.RETAINED, Phase.RETIRED)
        if candidate_pct == 100 and promoted and state.owner == owner:
            raise NothingToDo(f"this run already promoted {state.live} ({svc.describe(snap.split)})")
        _require_owner(svc, state, owner)
        target = svc.weights(state.candidate, candidate_pct)
        if snap.split == target and candidate_pct < 100 and state.phase == Phase.SHIFTING:
            raise NothingToDo(f"split already {svc.describe(target)}")
        first_generation.append(state.generation)
        allowed = {previous_pct, candidate_pct}
        if state.phase == Phase.ROLLED_BACK:
            rolled_back_at = datetime.fromisoformat(state.updated_at) if state.updated_at else started
            if state.generation != first_generation[0] or rolled_back_at >= started:
                raise TransitionRefused(
                    f"not shifting: this run was rolled back at {state.updated_at} ({state.reason}) while "
                    f"{candidate_pct} % was being applied; traffic stays on {state.live}. Clear the stage to retry"
                )
            allowed = {0}
        now_pct = _pct(svc, state, snap.split)
        if now_pct not in allowed:
            raise TransitionRefused(
                f"not shifting {state.candidate} to {candidate_pct} %: traffic reads {svc.describe(snap.split)}, "
                f"and this step follows {previous_pct} % ({state.phase}). Clear the stages in order, or start a "
                f"new run"
            )
        if state.phase == Phase.HELD and candidate_pct != 100:
            raise TransitionRefused(f"the deployment is held at {svc.describe(snap.split)}; approve it or roll back")
        wrong = candidate_mismatch(state, serving)
        if wrong:
            raise TransitionRefused(
                f"not shifting traffic to {state.candidate}: its aliases do not serve this run's release ({wrong}). "
                f"Clear deploy_green to release again"
            )
        if candidate_pct < 100:
            return replace(state, phase=Phase.SHIFTING, split=target, reason=f"shift to {candidate_pct} %")
        retained = None
        phase = Phase.PROMOTED
        if retention_seconds > 0:
            until = (datetime.now(UTC) + timedelta(seconds=retention_seconds)).isoformat(timespec="seconds")
            retained = Retained(state.live, until, dict(state.versions.get(state.live, {})), owner)
            phase = Phase.RETAINED
        return replace(
            state,
            phase=phase,
            live=state.candidate,
            candidate=state.live,
            split=target,
            retained=retained,
            reason="promoted",
        )

    try:
        return svc.transition(decide, what=f"shift to {candidate_pct} %")
    except NothingToDo:
        return None


def _pct(svc: ServiceState, state: DeploymentState, split: Mapping[str, int]) -> int:
    return split[svc.spec.slots[state.candidate].set_identifier]


def hold(svc: ServiceState, owner: str, reason: str) -> DeploymentState:
    """Promotion refused: the split stays, the phase says held (the owner may still promote or roll back)."""

    def decide(snap: Snapshot) -> DeploymentState:
        state = _require_declared(svc, snap)
        _require_owner(svc, state, owner)
        if state.phase == Phase.HELD:
            raise NothingToDo("already held")
        return replace(state, phase=Phase.HELD, reason=reason[:300])

    try:
        return svc.transition(decide, what="hold").state
    except NothingToDo:
        return svc.read().state  # type: ignore[return-value]


def resume(svc: ServiceState, owner: str, reason: str) -> DeploymentState | None:
    """A held canary step soaked clean again (live recovered): the run may shift on. None if not held."""

    def decide(snap: Snapshot) -> DeploymentState:
        state = _require_declared(svc, snap)
        _require_owner(svc, state, owner)
        if state.phase != Phase.HELD or _pct(svc, state, snap.split) in (0, 100):
            raise NothingToDo(f"not held at a canary step ({state.phase})")
        return replace(state, phase=Phase.SHIFTING, reason=reason[:300])

    try:
        return svc.transition(decide, what="resume").state
    except NothingToDo:
        return None


def rollback(svc: ServiceState, owner: str, reason: str, *, include_held: bool = True) -> Outcome:
    """The run's own rollback: 100 % back on its live slot, from any split it owns.

    :param include_held: also roll back a held split (a stage failed after the hold); the end of a
        run that was held by a rejection passes False, so a hold keeps its split.
    :raises NothingToDo: nothing of this run's to restore: it never took the service, its traffic is
        already restored, it promoted, or another run owns the service now. The message says which.
    """

    def decide(snap: Snapshot) -> DeploymentState:
        state = snap.state
        if state is None:
            raise NothingToDo("no deployment state: this run never took the service; traffic was not touched")
        if state.owner != owner:
            raise NothingToDo(
                f"not rolling back: {_who(state)} owns {svc.spec.service} now; traffic reads {svc.describe(snap.split)}"
            )
        restored = snap.split == svc.weights(state.candidate, 0)
        if state.phase in (Phase.ROLLED_BACK, Phase.ABORTED) and restored:
            raise NothingToDo(f"traffic already on {state.live} ({svc.describe(snap.split)}; {state.phase})")
        if state.phase in (Phase.PROMOTED, Phase.RETAINED, Phase.RETIRED):
            raise NothingToDo(
                f"not rolling back: this run promoted {state.live}; automatic rollback does not undo a promotion. "
                f"Use the emergency rollback ('bluegreen rollback') to return to the retained release"
            )
        if state.phase == Phase.HELD and not include_held:
            raise NothingToDo(f"held at {svc.describe(snap.split)}: a hold keeps its split")
        return replace(state, phase=Phase.ROLLED_BACK, split=svc.weights(state.candidate, 0), reason=reason[:300])

    return svc.transition(decide, what="rollback")


_WARNING_CHARS = 300  # a reason is cut at 300 characters; a warning adds at most this many


def record_warning(svc: ServiceState, owner: str, warning: str) -> DeploymentState:
    """Add ``warning`` to the reason of this run's rolled-back deployment (e.g. live is unhealthy too).

    A state-only change (the split stays), so ``bluegreen status`` and the Blue/Green page show it.

    :raises NothingToDo: the state is not this run's rolled-back (or aborted) deployment with 100 %
        on its live slot, or already carries this warning; nothing was changed.
    """
    if not isinstance(warning, str) or not warning.strip():
        raise ValueError(f"a warning must be non-empty text, got {warning!r}")
    note = " ".join(warning.split())[:_WARNING_CHARS]

    def decide(snap: Snapshot) -> DeploymentState:
        state = _require_declared(svc, snap)
        if state.owner != owner:
            raise NothingToDo(f"not noting it: {_who(state)} owns {svc.spec.service} now")
        if state.phase not in (Phase.ROLLED_BACK, Phase.ABORTED) or snap.split != svc.weights(state.candidate, 0):
            raise NothingToDo(f"not noting it: {svc.spec.service} is {state.phase} at {svc.describe(snap.split)}")
        if note in state.reason:
            raise NothingToDo("the deployment state already says so")
        return replace(state, reason=f"{state.reason}; {note}" if state.reason else note)

    return svc.transition(decide, what="warning").state


def abort(
    svc: ServiceState,
    by: str,
    reason: str,
    *,
    retained_serving: Callable[[str], Mapping[str, str | None]],
) -> Outcome:
    """The emergency button. Mid-deployment: 100 % to the live slot and the run never shifts again.
    After a promotion, within retention: 100 % back to the retained slot, if its aliases still serve
    the retained release. Otherwise :class:`NothingToDo` saying why. A second press changes nothing.

    :param retained_serving: slot name -> {function: version its alias serves now}.
    """

    def decide(snap: Snapshot) -> DeploymentState:
        state = snap.state
        if state is None:
            raise NothingToDo(
                f"nothing to roll back: {svc.spec.service} has no deployment state; traffic reads "
                f"{svc.describe(snap.split)}"
            )
        why = f"{reason} by {by}"[:300]
        if state.active:
            return replace(state, phase=Phase.ABORTED, split=svc.weights(state.candidate, 0), reason=why)
        if state.phase == Phase.RETAINED and state.retained is not None:
            return _back_to_retained(
                svc, state, f"emergency rollback to the retained release ({why})", retained_serving
            )
        detail = {
            Phase.ROLLED_BACK: f"the last deployment ({state.owner}) was already rolled back",
            Phase.ABORTED: f"already rolled back at {state.updated_at} ({state.reason})",
            Phase.RETIRED: "the previous release's retention ended and it was retired",
            Phase.PROMOTED: "the last promotion retained nothing",
        }.get(state.phase, str(state.phase))
        raise NothingToDo(f"nothing to roll back: {detail}; {state.live} is live ({svc.describe(snap.split)})")

    return svc.transition(decide, what="emergency rollback")


def _back_to_retained(
    svc: ServiceState,
    state: DeploymentState,
    reason: str,
    retained_serving: Callable[[str], Mapping[str, str | None]],
) -> DeploymentState:
    """100 % back on the retained slot, if its retention holds and its aliases still serve the retained release."""
    kept = state.retained
    if kept is None:
        raise NothingToDo(f"nothing to roll back to: {svc.spec.service} retains no previous release")
    if not kept.active():
        raise NothingToDo(f"nothing to roll back to: the retention of {kept.slot} ended at {kept.until}")
    serving = retained_serving(kept.slot)
    moved = {fn: f"{v} -> {serving.get(fn)}" for fn, v in kept.versions.items() if serving.get(fn) != v}
    if moved or not kept.versions:
        raise TransitionRefused(
            f"not rolling back to {kept.slot}: its aliases no longer serve the retained release ({moved}); "
            f"nothing safe to go back to. Deploy the previous release as a new run"
        )
    return replace(
        state,
        phase=Phase.ABORTED,
        live=kept.slot,
        candidate=state.live,
        split=svc.weights(state.live, 0),
        retained=None,
        reason=reason[:300],
    )


def guard_rollback(
    svc: ServiceState,
    owner: str,
    reason: str,
    *,
    retained_serving: Callable[[str], Mapping[str, str | None]],
) -> Outcome:
    """The post-promotion guard: back to the retained slot, only for the run whose promotion it retains.

    Another run owning the service, a retention already ended, rolled back or retired: refused, and
    nothing changes.
    """

    def decide(snap: Snapshot) -> DeploymentState:
        state = _require_declared(svc, snap)
        if state.owner != owner:
            raise NothingToDo(f"not rolling back: {_who(state)} owns {svc.spec.service} now")
        if state.phase != Phase.RETAINED or state.retained is None:
            raise NothingToDo(f"not rolling back: {svc.spec.service} is {state.phase} ({state.reason})")
        return _back_to_retained(svc, state, f"post-promotion guard: {reason}", retained_serving)

    return svc.transition(decide, what="post-promotion rollback")


def retire(svc: ServiceState, owner: str, *, now: datetime | None = None) -> Outcome:
    """End the retention this run's promotion started, once its deadline has passed (teardown).

    The retired slot's health check leaves the state in the same swap; the outcome's ``before`` state
    names it, for the caller to delete (no record carries it: the split is 0/100).

    :raises NothingToDo: there is nothing of this run's to retire; the message says why.
    """

    def decide(snap: Snapshot) -> DeploymentState:
        state = _require_declared(svc, snap)
        if state.owner != owner:
            raise NothingToDo(f"{_who(state)} owns {svc.spec.service} now; its slot {state.candidate} is its to reuse")
        if state.phase != Phase.RETAINED or state.retained is None:
            raise NothingToDo(f"this run's deployment is {state.phase}; nothing is retained")
        if state.retained.active(now):
            raise TransitionRefused(f"{state.retained.slot} is retained until {state.retained.until}")
        slot = state.retained.slot
        checks = {name: check for name, check in state.health_checks.items() if name != slot}
        return replace(state, phase=Phase.RETIRED, retained=None, health_checks=checks, reason=f"retired {slot}")

    return svc.transition(decide, what="retire")

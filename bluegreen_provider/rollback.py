"""The one rollback: used by the rollback task, every stage's failure callback, the CLI and the manual DAG.

Rolling back means: the slot that was live before the deployment takes 100 % again, Route53 reports
the change INSYNC, the split read back is exactly that, and the deployment lock is released. Every
function here reads Route53 first, so calling it twice is safe (the second call changes nothing), and
none of them touches traffic that another run now owns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bluegreen_provider.plan import Plan, PlanError
from bluegreen_provider.records import DeploymentRecords, owner_of

if TYPE_CHECKING:
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.spec import DeploymentSpec

log = logging.getLogger(__name__)


class RollbackError(RuntimeError):
    """The rollback was submitted but Route53 does not read back the restored split."""


class RollbackRefused(PlanError):
    """Rolling back would change traffic this caller does not own; nothing was changed."""


class NothingToRollBack(RollbackRefused):
    """No deployment holds traffic and no previous release is retained."""


def describe_split(spec: DeploymentSpec, split: Mapping[str, int]) -> str:
    """A split as people read it: 'blue 90 / green 10'."""
    names = {s.set_identifier: s.name for s in spec.slots.values()}
    return " / ".join(f"{names.get(k, k)} {v}" for k, v in sorted(split.items()))


def _read_split(route53: Route53Hook, zone_id: str, spec: DeploymentSpec) -> dict[str, int]:
    sets = [s.set_identifier for s in spec.slots.values()]
    return route53.get_split(zone_id, spec.record_name, spec.record_type, sets)


def _restore_slot(
    route53: Route53Hook,
    zone_id: str,
    spec: DeploymentSpec,
    slot: str,
    *,
    reason: str,
    wait: bool,
    timeout_seconds: float | None,
    poll_seconds: float,
) -> dict[str, Any]:
    """Give ``slot`` 100 % and the other slot 0 %, verify the read-back; no change if already there."""
    before = _read_split(route53, zone_id, spec)
    target = spec.route53_weights(spec.other_slot(slot), 0)
    comment = f"bluegreen rollback {spec.service} to {slot}: {reason}"[:256]
    change_id = route53.set_split(zone_id, spec.record_name, spec.record_type, target, comment=comment)
    insync = True
    if change_id is not None:
        if wait:
            route53.wait_for_change(
                change_id,
                timeout_seconds=timeout_seconds or spec.insync_timeout_seconds,
                poll_seconds=poll_seconds,
            )
        else:
            insync = route53.get_change_status(change_id) == "INSYNC"
    after = _read_split(route53, zone_id, spec)
    if after != target:
        raise RollbackError(
            f"rollback to {slot} submitted but Route53 reads {describe_split(spec, after)}, expected "
            f"{describe_split(spec, target)}; someone else is changing {spec.record_name}"
        )
    return {
        "changed": change_id is not None,
        "change_id": change_id,
        "insync": insync,
        "split_before": before,
        "split_after": after,
        "reason": reason,
    }


def restore_live(
    route53: Route53Hook,
    plan: Plan,
    *,
    reason: str,
    owner: str,
    wait: bool = True,
    timeout_seconds: float | None = None,
    poll_seconds: float = 5,
) -> dict[str, Any]:
    """Put all traffic back on ``plan.live`` and release ``owner``'s lock.

    Refuses (:class:`RollbackRefused`, nothing changed) when another run holds the lock, or when no
    run holds it and traffic is not already restored: this run has promoted, or a newer deployment
    owns the record now, and an automatic rollback must not undo either.

    :param route53: Route53 hook.
    :param plan: the deployment's plan.
    :param reason: why, recorded in the Route53 change comment and the result.
    :param owner: the rolling-back run (``dag_id/run_id``); its lock is released.
    :param wait: block until INSYNC (bounded by ``timeout_seconds``, default the spec's
        ``insync_timeout_seconds``). With ``wait=False`` the lock is kept until a later call finds
        the change INSYNC, so callers that defer call again afterwards.
    :return: ``{"changed", "change_id", "insync", "split_before", "split_after", "reason", "lock_released"}``.
    """
    spec = plan.spec
    records = DeploymentRecords(route53, plan.zone_id, spec)
    lock = records.lock()
    if lock is not None and lock.owner != owner:
        raise RollbackRefused(
            f"not rolling back: run {lock.run_id} of DAG {lock.dag_id} owns {spec.record_name} now "
            f"(since {lock.since}); traffic reads {describe_split(spec, _read_split(route53, plan.zone_id, spec))}"
        )
    if lock is None:
        split = _read_split(route53, plan.zone_id, spec)
        if split != plan.weights_for(0):
            retained = records.retention()
            if retained is not None and retained.owner == owner:
                why = (
                    f"this run promoted {plan.candidate}; automatic rollback does not undo a promotion. "
                    f"{plan.live} is retained until {retained.until}: use the manual rollback to return to it"
                )
            else:
                why = "this run no longer holds the deployment lock, so the traffic is not its to move"
            raise RollbackRefused(
                f"not rolling back to {plan.live}: {why} (traffic reads {describe_split(spec, split)})"
            )
    result = _restore_slot(
        route53,
        plan.zone_id,
        spec,
        plan.live,
        reason=reason,
        wait=wait,
        timeout_seconds=timeout_seconds,
        poll_seconds=poll_seconds,
    )
    result["lock_released"] = records.release(owner) if result["insync"] else False
    if result["changed"]:
        log.warning(
            "ROLLED BACK %s: %s -> %s (%s)",
            spec.record_name,
            describe_split(spec, result["split_before"]),
            describe_split(spec, result["split_after"]),
            reason,
        )
    else:
        log.info("Traffic already on %s (%s); no change", plan.live, describe_split(spec, result["split_after"]))
    return result


def rollback_on_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` for every stage: restore the live slot at once; never raises.

    Hooks come from the failing task's ``aws_conn_id``/``region_name``. The rollback task that
    follows repeats this (a no-op then) and fails the run, so the outcome is visible in the UI.
    """
    task_id = "?"
    try:
        task = context["task"]
        ti = context["ti"]
        task_id = ti.task_id
        raw = ti.xcom_pull(task_ids=getattr(task, "plan_task_id", "plan"))
        if not raw:
            log.warning("Task %s failed before any traffic moved; nothing to roll back.", task_id)
            return
        from bluegreen_provider.hooks.route53 import Route53Hook

        plan = Plan.from_dict(raw)
        route53 = Route53Hook(
            aws_conn_id=getattr(task, "aws_conn_id", "aws_default"), region_name=getattr(task, "region_name", None)
        )
        dag_run = context["dag_run"]
        result = restore_live(
            route53,
            plan,
            reason=f"{task_id} failed: {context.get('exception') or 'see its log (failure reported by Airflow)'}",
            owner=owner_of(dag_run.dag_id, dag_run.run_id),
        )
        if result["changed"]:
            log.error(
                "AUTOMATIC ROLLBACK after %s failed: traffic %s -> %s",
                task_id,
                describe_split(plan.spec, result["split_before"]),
                describe_split(plan.spec, result["split_after"]),
            )
        else:
            log.warning(
                "%s failed; traffic is on the live slot %s (%s); nothing to restore",
                task_id,
                plan.live,
                describe_split(plan.spec, result["split_after"]),
            )
    except RollbackRefused as err:
        log.error("AUTOMATIC ROLLBACK after %s not done: %s", task_id, err)
    except Exception:
        log.exception(
            "AUTOMATIC ROLLBACK after %s FAILED; traffic may still reach the candidate. The rollback task "
            "retries it; otherwise run the manual rollback now.",
            task_id,
        )


def manual_rollback(
    route53: Route53Hook,
    spec: DeploymentSpec,
    *,
    zone_id: str | None = None,
    reason: str = "manual rollback",
    wait: bool = True,
    timeout_seconds: float | None = None,
    poll_seconds: float = 5,
) -> dict[str, Any]:
    """The emergency path, needing only the spec: undo whatever deployment is in progress or just done.

    If a run holds the lock, its live slot gets 100 % and the lock is released. Otherwise, if a
    promotion's retained slot is still within its retention window and takes no traffic, 100 %
    goes back to it and the retention record is cleared. Otherwise :class:`NothingToRollBack`.

    :return: ``{"action": "restored_live" | "restored_retained", "slot", ...}`` plus the split before/after.
    """
    zone_id = zone_id or route53.resolve_zone_id(spec.hosted_zone)
    records = DeploymentRecords(route53, zone_id, spec)
    opts = {"reason": reason, "wait": wait, "timeout_seconds": timeout_seconds, "poll_seconds": poll_seconds}
    lock = records.lock()
    if lock is not None:
        if lock.live not in spec.slots:
            raise RollbackRefused(f"the deployment lock names an unknown live slot {lock.live!r}: {lock}")
        result = _restore_slot(route53, zone_id, spec, lock.live, **opts)
        records.mark_aborted(lock.owner)  # the run must not take the released lock back and shift again
        released = records.release(lock.owner) if result["insync"] else False
        log.warning("MANUAL ROLLBACK of run %s: %s is live again", lock.owner, lock.live)
        return {"action": "restored_live", "slot": lock.live, "owner": lock.owner, "lock_released": released, **result}
    split = _read_split(route53, zone_id, spec)
    retained = records.retention()
    if retained is not None and retained.active() and retained.slot in spec.slots:
        if split[spec.slots[retained.slot].set_identifier] == 0:
            result = _restore_slot(route53, zone_id, spec, retained.slot, **opts)
            records.clear_retention()
            log.warning(
                "MANUAL ROLLBACK after promotion by %s: previous release in %s is live again",
                retained.owner,
                retained.slot,
            )
            return {"action": "restored_retained", "slot": retained.slot, "owner": retained.owner, **result}
        raise NothingToRollBack(
            f"nothing to roll back to: the retained slot {retained.slot} already takes traffic "
            f"({describe_split(spec, split)})"
        )
    why = f"retention of {retained.slot} ended at {retained.until}" if retained else "no previous release is retained"
    raise NothingToRollBack(
        f"nothing to roll back to: no deployment holds {spec.record_name} and {why}; "
        f"traffic reads {describe_split(spec, split)}"
    )

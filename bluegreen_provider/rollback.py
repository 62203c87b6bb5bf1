"""Rollback entry points around the state transitions: every stage's failure callback and the emergency button.

Both only send one compare-and-swap change and return: a callback is cut off 20 s after its task
ends (``[core] task_success_overtime``), so waiting for INSYNC and reading the split back is the
``rollback`` task's job, on the triggerer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bluegreen_provider.plan import Plan
from bluegreen_provider.state import NothingToDo, Outcome, ServiceState, abort, guard_rollback, owner_of, rollback

if TYPE_CHECKING:
    from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.spec import DeploymentSpec

log = logging.getLogger(__name__)

ROLLBACK_DAG_ID = "bluegreen_rollback"


def rollback_hint(service: str) -> str:
    """How a person rolls the service back, for messages."""
    return f"trigger the {ROLLBACK_DAG_ID} DAG or run `bluegreen rollback --service {service}`"


def describe_split(spec: DeploymentSpec, split: Mapping[str, int]) -> str:
    """A split as people read it: 'blue 90 / green 10'."""
    names = {s.set_identifier: s.name for s in spec.slots.values()}
    return " / ".join(f"{names.get(k, k)} {v}" for k, v in sorted(split.items()))


def outcome_summary(outcome: Outcome) -> dict[str, Any]:
    """What a rollback did, for XCom and logs."""
    return {
        "changed": outcome.split_changed,
        "change_id": outcome.change_id,
        "split_before": outcome.before.split,
        "split_after": outcome.state.split,
        "phase": str(outcome.state.phase),
        "generation": outcome.state.generation,
        "live": outcome.state.live,
        "owner": outcome.state.owner,
        "reason": outcome.state.reason,
    }


def rollback_on_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` for every stage: send the rollback at once and return; never raises.

    Hooks come from the failing task's ``aws_conn_id``/``region_name``. The ``rollback`` task that
    follows waits for INSYNC and checks the split.
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
        cause = context.get("exception") or "see its log (failure reported by Airflow)"
        outcome = rollback(
            ServiceState(route53, plan.zone_id, plan.spec),
            owner_of(dag_run.dag_id, dag_run.run_id),
            f"{task_id} failed: {cause}",
        )
        log.error(
            "AUTOMATIC ROLLBACK after %s failed: traffic %s -> %s (change %s; the rollback task confirms INSYNC)",
            task_id,
            describe_split(plan.spec, outcome.before.split),
            describe_split(plan.spec, outcome.state.split),
            outcome.change_id,
        )
    except NothingToDo as err:
        log.warning("%s failed; nothing to roll back: %s", task_id, err)
    except Exception:
        log.exception(
            "AUTOMATIC ROLLBACK after %s FAILED; traffic may still reach the candidate. The rollback task "
            "retries it; otherwise run the manual rollback now.",
            task_id,
        )


def slot_serving(lambdas: LambdaAliasHook, spec: DeploymentSpec) -> Callable[[str], dict[str, str | None]]:
    """slot -> {function: version its alias serves now}, read from Lambda when asked."""

    def serving(slot: str) -> dict[str, str | None]:
        alias = spec.slots[slot].alias
        result: dict[str, str | None] = {}
        for release in spec.functions:
            target = lambdas.get_alias(release.name, alias)
            result[release.name] = target.version if target else None
        return result

    return serving


def post_promotion_rollback(
    route53: Route53Hook, lambdas: LambdaAliasHook, plan: Plan, owner: str, reason: str
) -> Outcome:
    """The post-promotion guard's rollback to the retained slot (see :func:`bluegreen_provider.state.guard_rollback`).

    :raises NothingToDo: this run's promotion is no longer the one retained; nothing changed.
    """
    svc = ServiceState(route53, plan.zone_id, plan.spec)
    outcome = guard_rollback(svc, owner, reason, retained_serving=slot_serving(lambdas, plan.spec))
    log.error(
        "POST-PROMOTION ROLLBACK of %s: %s -> %s; %s is live again (%s)",
        plan.spec.service,
        describe_split(plan.spec, outcome.before.split),
        describe_split(plan.spec, outcome.state.split),
        outcome.state.live,
        reason,
    )
    return outcome


def emergency_rollback(
    route53: Route53Hook,
    lambdas: LambdaAliasHook,
    spec: DeploymentSpec,
    *,
    by: str,
    zone_id: str | None = None,
    reason: str = "manual rollback",
) -> Outcome:
    """The emergency button, needing only the spec (see :func:`bluegreen_provider.state.abort`).

    :raises NothingToDo: nothing safe to roll back to; the message says why.
    """
    zone_id = zone_id or route53.resolve_zone_id(spec.hosted_zone)
    outcome = abort(ServiceState(route53, zone_id, spec), by, reason, retained_serving=slot_serving(lambdas, spec))
    log.warning(
        "EMERGENCY ROLLBACK of %s by %s: %s -> %s; %s is live (generation %d)",
        spec.service,
        by,
        describe_split(spec, outcome.before.split),
        describe_split(spec, outcome.state.split),
        outcome.state.live,
        outcome.state.generation,
    )
    return outcome

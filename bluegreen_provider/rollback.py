"""Rollback entry points around the state transitions: every stage's failure callback and the emergency button.

Both only send one compare-and-swap change and return: a callback is cut off 20 s after its task
ends (``[core] task_success_overtime``), so waiting for INSYNC and reading the split back is the
``rollback`` task's job, on the triggerer. That task then reads the live slot's health too
(:func:`report_live_health`): a rollback can only go back to live, and when live is failing as
well the on-call engineer must hear it from the rollback, not from the next page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bluegreen_provider.plan import Plan
from bluegreen_provider.state import (
    DeploymentState,
    NothingToDo,
    Outcome,
    Phase,
    ServiceState,
    abort,
    guard_rollback,
    owner_of,
    record_warning,
    rollback,
)

if TYPE_CHECKING:
    from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook
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


def plan_task_ids(task: Any) -> list[str]:
    """Every plan task of the failing task's DAG: one per region, each region's rollback to send.

    A breach anywhere rolls every region back; a single-region DAG has the one ``plan``.
    """
    has_dag = getattr(task, "has_dag", None)
    dag = task.dag if callable(has_dag) and has_dag() else None
    own = getattr(task, "plan_task_id", "plan")
    found = [t for t in (dag.task_ids if dag is not None else []) if t == "plan" or t.endswith(".plan")]
    return sorted(set(found) | {own}, key=lambda t: (t != own, t))


def rollback_on_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` for every stage: send the rollback at once and return; never raises.

    Sent for every region of the DAG (each region's plan), the failing task's first. Hooks come from
    the failing task's ``aws_conn_id``, in each region's ``region_name``. The ``rollback`` task of each
    region that follows waits for INSYNC and checks the split.
    """
    for plan_task_id in plan_task_ids(context.get("task")):
        _rollback_region(context, plan_task_id)


def _rollback_region(context: Mapping[str, Any], plan_task_id: str) -> None:
    task_id = "?"
    try:
        task = context["task"]
        ti = context["ti"]
        task_id = ti.task_id
        raw = ti.xcom_pull(task_ids=plan_task_id)
        if not raw:
            region = plan_task_id.rpartition(".")[0]
            log.warning(
                "Task %s failed before any traffic moved; nothing to roll back%s.",
                task_id,
                f" in {region}" if region else "",
            )
            return
        from bluegreen_provider.hooks.route53 import Route53Hook

        plan = Plan.from_dict(raw)
        route53 = Route53Hook(
            aws_conn_id=getattr(task, "aws_conn_id", "aws_default"),
            region_name=plan.spec.region_name or getattr(task, "region_name", None),
        )
        dag_run = context["dag_run"]
        cause = context.get("exception") or "see its log (failure reported by Airflow)"
        outcome = rollback(
            ServiceState(route53, plan.zone_id, plan.spec),
            owner_of(dag_run.dag_id, dag_run.run_id),
            f"{task_id} failed: {cause}",
        )
        log.error(
            "AUTOMATIC ROLLBACK after %s failed: %s%s -> %s (change %s; the rollback task confirms INSYNC)",
            task_id,
            f"{plan.spec.region_name}: " if plan.spec.region_name else "traffic ",
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
    svc = ServiceState(route53, plan.zone_id, plan.spec, lambdas=lambdas)
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
    svc = ServiceState(route53, zone_id, spec, lambdas=lambdas)
    outcome = abort(svc, by, reason, retained_serving=slot_serving(lambdas, spec))
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


# -- the live slot after a rollback -----------------------------------------------------------------

LIVE_HEALTH_PROBES = 3
LIVE_HEALTH_PROBE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class LiveHealth:
    """The live slot's health as read right after a rollback put all traffic on it.

    ``problems`` are the signals that say it is failing; ``checked`` what was read; ``unread`` the
    signals that could not be read (no evidence either way).
    """

    slot: str
    problems: tuple[str, ...] = ()
    checked: tuple[str, ...] = ()
    unread: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def warning(self) -> str | None:
        """'live slot blue is unhealthy too: …', or None when nothing read says so."""
        return None if self.healthy else f"live slot {self.slot} is unhealthy too: {'; '.join(self.problems)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "healthy": self.healthy,
            "problems": list(self.problems),
            "checked": list(self.checked),
            "unread": list(self.unread),
            "warning": self.warning,
        }


def live_slot_health(
    plan: Plan,
    state: DeploymentState,
    *,
    route53: Route53Hook,
    cloudwatch: CloudWatchMetricsHook,
    probe: Callable[[str, float], Mapping[str, Any]] | None = None,
    probes: int = LIVE_HEALTH_PROBES,
    now: datetime | None = None,
) -> LiveHealth:
    """Read the health of ``state.live`` the ways the deployment judges a slot, and say what fails.

    - its health URL: unhealthy when most of ``probes`` GETs fail (not 2xx, or no answer);
    - its Route53 health check (the one the state records for it, if any), by Route53's own rule;
    - its error rate over the soak's window, above the run's threshold with at least
      ``min_requests`` requests.

    A signal that cannot be read is listed in ``unread`` and judged neither way.
    """
    from bluegreen_provider.soak import SoakRules, slot_query
    from bluegreen_provider.triggers.health import describe_failures, probe_once

    probe = probe or probe_once
    live = state.live
    now = now or datetime.now(UTC)
    problems: list[str] = []
    checked: list[str] = []
    unread: list[str] = []

    url = plan.spec.slots[live].health_url
    if url:
        answers = [dict(probe(url, LIVE_HEALTH_PROBE_TIMEOUT_SECONDS)) for _ in range(probes)]
        failed = [a for a in answers if a.get("status") is None or not 200 <= int(a["status"]) < 300]
        checked.append(f"health URL {url}")
        if 2 * len(failed) > len(answers):
            problems.append(f"its health URL {url}: {describe_failures(answers)}")

    check_id = state.health_checks.get(live)
    if check_id:
        try:
            status = route53.health_check_status(check_id)
        except Exception as err:
            unread.append(f"Route53 health check {check_id}: {type(err).__name__}: {err}")
        else:
            checked.append(f"Route53 health check {check_id}")
            if status.checkers and not status.healthy:
                problems.append(f"its Route53 health check {check_id}: {status.detail}")

    rules = SoakRules.from_plan(plan)
    start = now - timedelta(seconds=rules.window_seconds)
    try:
        rate = cloudwatch.error_rate(
            slot_query(plan, live, state.versions.get(live)).query,
            start=start,
            end=now,
            period_seconds=rules.period_seconds,
            min_requests=rules.min_requests,
        )
    except Exception as err:
        unread.append(f"error rate: {type(err).__name__}: {err}")
    else:
        checked.append(f"error rate over the last {rules.window_seconds:g} s")
        if rate.enough_data and rate.rate_pct is not None and rate.rate_pct > rules.threshold_pct:
            problems.append(
                f"error rate {rate.rate_pct:.1f} % > {rules.threshold_pct:g} % over the last "
                f"{rules.window_seconds:g} s ({rate.errors:.0f} of {rate.requests:.0f} requests failed)"
            )
    return LiveHealth(live, tuple(problems), tuple(checked), tuple(unread))


def report_live_health(
    route53: Route53Hook,
    cloudwatch: CloudWatchMetricsHook,
    plan: Plan,
    owner: str,
    *,
    probe: Callable[[str, float], Mapping[str, Any]] | None = None,
) -> LiveHealth | None:
    """After this run's traffic went back to its live slot: read live's health, and if it fails say so loudly.

    The warning is logged and written into the deployment state's reason (what ``bluegreen status``
    and the Blue/Green page show), so the rolled-back deployment tells whoever looks next that the
    rollback restored a slot that is failing too. None when this run's traffic is not back on live
    (it promoted, is held, never took the service, or another run owns it now): nothing to judge.
    """
    svc = ServiceState(route53, plan.zone_id, plan.spec)
    snap = svc.read()
    state = snap.state
    restored = state is not None and snap.split == plan.spec.route53_weights(state.candidate, 0)
    if state is None or state.owner != owner or state.phase not in (Phase.ROLLED_BACK, Phase.ABORTED) or not restored:
        return None
    health = live_slot_health(plan, state, route53=route53, cloudwatch=cloudwatch, probe=probe)
    if health.warning is None:
        log.info("Live slot %s read healthy after the rollback (%s)", health.slot, ", ".join(health.checked))
        return health
    log.error(
        "ROLLED BACK ONTO AN UNHEALTHY SLOT: %s. Traffic is back on %s, but a rollback cannot fix this; "
        "%s needs a person now",
        health.warning,
        health.slot,
        plan.spec.service,
    )
    try:
        record_warning(svc, owner, health.warning)
    except NothingToDo as err:
        log.info("The warning was not added to the deployment state: %s", err)
    except Exception:  # the warning is logged and returned; the state's copy is a convenience
        log.exception("The warning could not be added to the deployment state")
    return health

"""The rollback task (the run's teardown: it runs however the run ends) and the emergency-rollback task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.notifications import About, notify, notify_about, what_broke
from bluegreen_provider.operators.base import StageOperator
from bluegreen_provider.plan import Plan, PlanError
from bluegreen_provider.rollback import describe_split, emergency_rollback, outcome_summary, report_live_health
from bluegreen_provider.spec import DeploymentSpec, SpecError, load_spec
from bluegreen_provider.state import NothingToDo, StateError, TransitionRefused, rollback

if TYPE_CHECKING:
    from airflow.sdk import Context


def failed_task_ids(context: Context) -> list[str]:
    """Task ids of this DAG run that failed, read from Airflow; empty if it cannot say."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    dag_run = context["dag_run"]
    try:
        states = RuntimeTaskInstance.get_task_states(dag_run.dag_id, run_ids=[dag_run.run_id])
    except Exception:
        return []
    return sorted(t for t, s in states.get(dag_run.run_id, {}).items() if s == "failed")


class RollbackOperator(StageOperator):
    """
    Make sure this run's traffic is back on its live slot, however the run ended.

    Declared as the run's teardown, so it runs when a stage failed, when a person marks the run
    failed (Airflow runs no callbacks then, but still runs teardowns), and after a success, where it
    finds nothing to do. It succeeds when it restored traffic or found nothing to restore and fails
    only when it could not; the run itself still ends failed after any rollback (a failed stage's
    downstream tasks fail it). A held run keeps its split. Waits for INSYNC on the triggerer and reads
    the split back, then reads the live slot's health: when live is failing too, its result, its log
    and the deployment state's reason say so (``live slot blue is unhealthy too: …``).

    :param hold_task_id: the task that ends a held run; a run whose only failure is that task keeps its split.
    :param poll_interval: seconds between Route53 ``GetChange`` polls while deferred.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields,)
    ui_color = "#ffcdd2"

    def __init__(self, *, hold_task_id: str = "hold", poll_interval: float = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval <= 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        self.hold_task_id = hold_task_id
        self.poll_interval = poll_interval

    def execute(self, context: Context) -> dict[str, Any]:
        failed = failed_task_ids(context)
        try:
            plan = Plan.from_dict(context["ti"].xcom_pull(task_ids=self.plan_task_id))
        except PlanError:
            self.log.info("The plan did not complete; traffic was not touched. Failed: %s", failed or "none")
            return {"action": "nothing", "reason": "the plan did not complete; traffic was not touched"}
        owner = self.run_owner(context)
        others = [t for t in failed if t != self.hold_task_id]
        reason = f"rollback task after {', '.join(others) or 'the run ended unfinished'}"
        try:
            outcome = rollback(self.service_state(plan), owner, reason, include_held=bool(others) or not failed)
        except NothingToDo as err:
            return self._verify(context, plan, {"action": "nothing", "reason": str(err)}, failed)
        except (TransitionRefused, StateError) as err:
            raise AirflowFailException(f"ROLLBACK NOT DONE: {err}. Failed: {', '.join(failed) or 'none'}.") from err
        result = {"action": "rolled_back", **outcome_summary(outcome)}
        self.log.error(
            "ROLLED BACK %s: %s -> %s (%s)",
            plan.spec.record_name,
            describe_split(plan.spec, outcome.before.split),
            describe_split(plan.spec, outcome.state.split),
            reason,
        )
        if not self.propagated(plan, outcome.change_id):
            self.defer_until_insync(
                outcome.change_id,
                timeout_seconds=plan.spec.insync_timeout_seconds,
                poll_interval=self.poll_interval,
                kwargs={"result": result, "failed": failed},
            )
        return self._verify(context, plan, result, failed)

    def execute_complete(
        self,
        context: Context,
        event: Mapping[str, Any] | None = None,
        result: Mapping[str, Any] | None = None,
        failed: list[str] | None = None,
    ) -> dict[str, Any]:
        plan = self.load_plan(context)
        result = dict(result or {})
        if not event or event.get("status") != "success":
            raise AirflowFailException(
                f"rollback submitted ({describe_split(plan.spec, result.get('split_after', {}))}) but Route53 did "
                f"not confirm INSYNC: {(event or {}).get('message', 'no event')}. Clear this task to re-check; "
                f"name servers may still answer with the old split."
            )
        return self._verify(context, plan, result, failed or [])

    def _verify(self, context: Context, plan: Plan, result: dict[str, Any], failed: list[str]) -> dict[str, Any]:
        """The split read back must be what the state record declares; say what happened."""
        svc = self.service_state(plan)
        snap = svc.read()
        state = snap.state
        if state is not None and state.owner == self.run_owner(context) and snap.split != state.split:
            raise AirflowFailException(
                f"ROLLBACK NOT CONFIRMED: {svc.router.source} reads {describe_split(plan.spec, snap.split)} but the "
                f"state declares {describe_split(plan.spec, state.split)}; someone is changing {plan.spec.record_name}"
            )
        result["split_now"] = snap.split
        health = report_live_health(self.route53, self.cloudwatch, plan, self.run_owner(context))
        if health is not None:
            result["live_health"] = health.to_dict()
            if health.warning:
                result["warnings"] = [*result.get("warnings", []), health.warning]
                result["reason"] = "; ".join(r for r in (result.get("reason"), health.warning) if r)
        stages = ", ".join(failed) or "none"
        stopped = [t for t in failed if t != self.hold_task_id]
        if result.get("action") == "rolled_back" or stopped:
            notify(
                context,
                plan,
                "rolled_back",
                failed=stopped,
                cause=what_broke(context, stopped) or (state.reason if state is not None else None),
                split=snap.split,
                warning=health.warning if health is not None else None,
            )
        if result.get("action") == "rolled_back":
            self.log.warning(
                "Traffic restored to %s (%s). Failed stages: %s.",
                result.get("live"),
                describe_split(plan.spec, snap.split),
                stages,
            )
        else:
            self.log.info("Nothing to restore: %s. Failed stages: %s.", result.get("reason"), stages)
        return result


class ManualRollbackOperator(StageOperator):
    """
    The emergency button: undo the deployment in progress, or the promotion still within retention.

    See :func:`bluegreen_provider.state.abort`. Fails, changing nothing, when there is nothing safe to
    roll back to; a second press changes nothing. Waits for INSYNC on the triggerer.

    :param spec: the service's deployment spec, as a mapping or JSON text.
    :param poll_interval: seconds between Route53 ``GetChange`` polls while deferred.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields, "spec")
    ui_color = "#ef9a9a"

    def __init__(self, *, spec: Mapping[str, Any] | str, poll_interval: float = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval <= 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        self.spec = spec
        self.poll_interval = poll_interval

    def _spec(self) -> DeploymentSpec:
        try:
            return load_spec(self.spec)
        except SpecError as err:
            raise AirflowFailException(str(err)) from err

    def execute(self, context: Context) -> dict[str, Any]:
        spec = self._spec()
        try:
            outcome = emergency_rollback(
                self.route53, self.lambdas, spec, by=self.run_owner(context), reason="manual rollback"
            )
        except TransitionRefused as err:
            raise AirflowFailException(str(err)) from err
        result = outcome_summary(outcome)
        zone_id = self.route53.resolve_zone_id(spec.hosted_zone)
        if not self.traffic_router(spec, zone_id).propagated(outcome.change_id):
            self.defer_until_insync(
                outcome.change_id,
                timeout_seconds=spec.insync_timeout_seconds,
                poll_interval=self.poll_interval,
                kwargs={"result": result},
            )
        result["insync"] = True
        return self._rolled_back(context, spec, result)

    def execute_complete(
        self, context: Context, event: Mapping[str, Any] | None = None, result: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        spec = self._spec()
        result = dict(result or {})
        if not event or event.get("status") != "success":
            raise AirflowFailException(
                f"rollback submitted ({describe_split(spec, result.get('split_after', {}))}) but Route53 did not "
                f"confirm INSYNC: {(event or {}).get('message', 'no event')}. Press the rollback again to re-check."
            )
        zone_id = self.route53.resolve_zone_id(spec.hosted_zone)
        router = self.traffic_router(spec, zone_id)
        split = router.read_split()
        if split != result.get("split_after"):
            raise AirflowFailException(
                f"rollback reached INSYNC but {router.source} now reads {describe_split(spec, split)}, expected "
                f"{describe_split(spec, result.get('split_after', {}))}; someone else changed it meanwhile"
            )
        result["insync"] = True
        return self._rolled_back(context, spec, result)

    @staticmethod
    def _rolled_back(context: Context, spec: DeploymentSpec, result: dict[str, Any]) -> dict[str, Any]:
        """Tell the service's notification targets who pressed the button and where traffic is now."""
        if result.get("changed"):
            dag_run = context["dag_run"]
            user = getattr(dag_run, "triggering_user_name", None)
            pressed = (
                f"emergency rollback pressed by {user} ({dag_run.dag_id}/{dag_run.run_id})"
                if user
                else (f"emergency rollback ({dag_run.dag_id}/{dag_run.run_id})")
            )
            notify_about(
                context,
                spec,
                lambda run: About.of_spec(spec, run, result.get("live")),
                "rolled_back",
                cause=pressed,
                split=result.get("split_after"),
            )
        return result

"""The rollback task: runs when any stage failed, restores the live slot, and fails the run on purpose."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import TriggerRule
from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.operators.base import StageOperator
from bluegreen_provider.plan import Plan, PlanError
from bluegreen_provider.records import DeploymentRecords
from bluegreen_provider.rollback import RollbackRefused, describe_split, manual_rollback, restore_live
from bluegreen_provider.spec import DeploymentSpec, SpecError

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


def shifted_task_ids(context: Context) -> list[str]:
    """Traffic-shift tasks of this run that ran (succeeded or failed), i.e. traffic may have moved."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    from bluegreen_provider.operators.traffic import ShiftWeightOperator

    dag_run = context["dag_run"]
    dag = context.get("dag")
    try:
        states = RuntimeTaskInstance.get_task_states(dag_run.dag_id, run_ids=[dag_run.run_id])
    except Exception:
        return []
    ran = {t for t, s in states.get(dag_run.run_id, {}).items() if s in ("success", "failed")}
    if dag is not None:
        shifts = {t.task_id for t in dag.tasks if isinstance(t, ShiftWeightOperator) and t.candidate_pct > 0}
    else:
        shifts = {t for t in ran if t.startswith("shift_")}
    return sorted(ran & shifts)


class RollbackOperator(StageOperator):
    """
    Restore all traffic to the slot that was live before this deployment, then fail the run.

    Runs when any upstream stage failed (``trigger_rule=one_failed``). It raises
    ``AirflowFailException`` even after a clean rollback: a leaf that succeeds would mark the DAG run
    successful, and a rolled-back deployment must never look like one. The message says which
    stage failed and what the split is now. If Route53 is not INSYNC at once, it waits on the
    triggerer.

    :param poll_interval: seconds between Route53 ``GetChange`` polls while deferred.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields,)
    ui_color = "#ffcdd2"

    def __init__(self, *, poll_interval: float = 5, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ONE_FAILED)
        super().__init__(**kwargs)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval <= 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        self.poll_interval = poll_interval

    def execute(self, context: Context) -> None:
        failed = failed_task_ids(context)
        try:
            plan = Plan.from_dict(context["ti"].xcom_pull(task_ids=self.plan_task_id))
        except PlanError as err:
            raise AirflowFailException(
                f"deployment refused before any change: the plan did not complete ({err}). "
                f"Failed: {', '.join(failed) or 'see the plan task'}. Traffic was not touched."
            ) from err
        owner = self.run_owner(context)
        reason = f"rollback task after {', '.join(failed) or 'a failed stage'}"
        try:
            result = restore_live(self.route53, plan, reason=reason, owner=owner, wait=False)
        except RollbackRefused as err:
            raise AirflowFailException(f"{err}. Failed: {', '.join(failed) or 'unknown'}.") from err
        if not result["insync"]:
            self.defer_until_insync(
                result["change_id"],
                timeout_seconds=plan.spec.insync_timeout_seconds,
                poll_interval=self.poll_interval,
                kwargs={"first": result, "failed": failed},
            )
        self._conclude(context, plan, result, failed)

    def execute_complete(
        self,
        context: Context,
        event: Mapping[str, Any] | None = None,
        first: Mapping[str, Any] | None = None,
        failed: list[str] | None = None,
    ) -> None:
        plan = self.load_plan(context)
        if not event or event.get("status") != "success":
            raise AirflowFailException(
                f"rollback submitted ({describe_split(plan.spec, (first or {}).get('split_after', {}))}) but "
                f"Route53 did not confirm INSYNC: {(event or {}).get('message', 'no event')}. Clear this task "
                f"to re-check; name servers may still answer with the old split."
            )
        self._conclude(context, plan, dict(first or {}), failed or [])

    def _conclude(self, context: Context, plan: Plan, first: Mapping[str, Any], failed: list[str]) -> None:
        # A second pass changes nothing, verifies the read-back and releases the lock now INSYNC.
        stages = ", ".join(failed) or "an upstream stage"
        try:
            final = restore_live(self.route53, plan, reason="rollback confirmed", owner=self.run_owner(context))
        except RollbackRefused as err:
            raise AirflowFailException(f"{err}. Failed: {stages}.") from err
        spec = plan.spec
        now = describe_split(spec, final["split_after"])
        if first.get("changed"):
            raise AirflowFailException(
                f"ROLLED BACK after {stages} failed: traffic restored to {plan.live} "
                f"({describe_split(spec, first['split_before'])} -> {now})."
            )
        shifted = shifted_task_ids(context)
        if shifted:
            raise AirflowFailException(
                f"ROLLED BACK after {stages} failed: traffic had moved ({', '.join(shifted)}) and is on "
                f"{plan.live} again ({now}); the failing stage's callback restored it (see its log)."
            )
        raise AirflowFailException(f"{stages} failed; traffic was never shifted; nothing to roll back ({now}).")


class ManualRollbackOperator(StageOperator):
    """
    The emergency button: undo the deployment in progress, or the promotion still within retention.

    Mid-deployment the locked run's live slot gets 100 % and the lock is released; after a promotion
    the retained slot gets 100 % and the retention record is cleared (see
    :func:`bluegreen_provider.rollback.manual_rollback`). Fails, changing nothing, when there is
    nothing to roll back to. Waits for INSYNC on the triggerer.

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
        from bluegreen_provider.operators.plan import load_spec

        try:
            return load_spec(self.spec)
        except SpecError as err:
            raise AirflowFailException(str(err)) from err

    def execute(self, context: Context) -> dict[str, Any]:
        spec = self._spec()
        reason = f"manual rollback ({self.run_owner(context)})"
        try:
            result = manual_rollback(self.route53, spec, reason=reason, wait=False)
        except RollbackRefused as err:
            raise AirflowFailException(str(err)) from err
        if not result["insync"]:
            self.defer_until_insync(
                result["change_id"],
                timeout_seconds=spec.insync_timeout_seconds,
                poll_interval=self.poll_interval,
                kwargs={"result": result},
            )
        return result

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
        sets = [s.set_identifier for s in spec.slots.values()]
        split = self.route53.get_split(zone_id, spec.record_name, spec.record_type, sets)
        if split != result.get("split_after"):
            raise AirflowFailException(
                f"rollback reached INSYNC but Route53 now reads {describe_split(spec, split)}, expected "
                f"{describe_split(spec, result.get('split_after', {}))}; someone else changed it meanwhile"
            )
        if result.get("action") == "restored_live":
            result["lock_released"] = DeploymentRecords(self.route53, zone_id, spec).release(result["owner"])
        result["insync"] = True
        return result

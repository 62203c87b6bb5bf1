"""The teardown stage: guard the promotion while the old slot is retained, then retire the old slot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.notifications import notify
from bluegreen_provider.operators.base import StageOperator
from bluegreen_provider.plan import Plan
from bluegreen_provider.rollback import outcome_summary, post_promotion_rollback, rollback_hint
from bluegreen_provider.soak import Soak, SoakRules
from bluegreen_provider.state import NothingToDo, Phase, TransitionRefused, retire
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger
from bluegreen_provider.triggers.route53 import Route53ChangeTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class TeardownBlueOperator(StageOperator):
    """
    Guard the promotion while the old slot is retained, then retire the old slot.

    The wait is a deferral to the absolute deadline in the state record (a triggerer restart keeps
    the clock). Meanwhile the triggerer watches the new live slot's error rate and alarms with the
    run's rules; on a breach ``spec.post_promotion_policy`` decides: ``rollback`` (default) puts
    100 % back on the retained slot through the state core and fails this task saying why,
    ``notify`` fails this task without changing traffic (the previous release stays retained until
    a person decides), ``off`` only waits.

    Retiring is one state transition (retained → retired) followed by clean-up: the old slot's
    Route53 health check (attached to no record at 100/0) is deleted and Lambda versions no alias uses are pruned
    (keeping ``spec.keep_versions``). It does nothing, says why, and succeeds when there is nothing
    of this run's to retire: another run owns the service now, or the promotion was rolled back.
    Its aliases are kept: the next deployment releases into them.

    :param promote_task_id: the promotion task; its XCom says when the promotion was INSYNC.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields,)
    ui_color = "#e0e0e0"

    def __init__(self, *, promote_task_id: str = "shift_100", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.promote_task_id = promote_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        plan = self.load_plan(context)
        state = self.service_state(plan).state()
        owner = self.run_owner(context)
        if state is None or state.owner != owner or state.phase != Phase.RETAINED or state.retained is None:
            return self._nothing(plan, state and f"the service is {state.phase} by run {state.owner}")
        now = datetime.now(UTC)
        until = state.retained.until_dt
        if now >= until:
            return self._retire(context, plan)
        policy = plan.spec.post_promotion_policy
        self.log.info(
            "Slot %s is retained until %s; %s on the triggerer",
            state.retained.slot,
            state.retained.until,
            "waiting" if policy == "off" else f"guarding {state.live} meanwhile (post_promotion_policy={policy})",
        )
        if policy == "off":
            self.defer(
                trigger=DateTimeTrigger(moment=until, end_from_trigger=False),
                method_name="execute_complete",
            )
        guard = self._guard(context, plan, state.live, until, now)
        rules = guard.rules
        self.defer(
            trigger=ErrorRateTrigger(
                soak=guard.to_dict(), mode="guard", aws_conn_id=self.aws_conn_id, region_name=self.region_name
            ),
            method_name="guard_complete",
            timeout=(until - now) + timedelta(seconds=60 + rules.poll_interval * (rules.max_consecutive_errors + 2)),
        )

    def _guard(self, context: Context, plan: Plan, live: str, until: datetime, now: datetime) -> Soak:
        """The new live slot, watched with the run's rules from its promotion until the retention ends."""
        promoted = context["ti"].xcom_pull(task_ids=self.promote_task_id) or {}
        since = promoted.get("insync_at") if isinstance(promoted, Mapping) else None
        start = min(datetime.fromisoformat(since), now) if since else now
        return Soak(
            stage_pct=100,
            candidate=self.watched(plan, live),
            baseline=None,
            rules=SoakRules.from_plan(plan),
            watch_from=start,
            soak_seconds=(until - start).total_seconds(),
            clock_start=start,
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._retire(context, self.load_plan(context))

    def guard_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The guard ended: the retention passed clean, or the new live slot breached, or AWS could not be read."""
        plan = self.load_plan(context)
        status = (event or {}).get("status")
        if status == "clean":
            return self._retire(context, plan)
        if status != "breach":
            raise AirflowFailException(
                f"post-promotion guard stopped: {(event or {}).get('message', 'no event')}. The previous release "
                f"stays retained; clear {self.task_id} to guard again, or {rollback_hint(plan.spec.service)}"
            )
        verdict = {k: event.get(k) for k in ("status", "rule", "message", "figures", "detected_at")}
        context["ti"].xcom_push(key="verdict", value=verdict)
        cause = f"{event['rule']} after promotion: {event['message']}"
        if plan.spec.post_promotion_policy != "rollback":
            notify(context, plan, "post_promotion_breach", cause=cause, policy=plan.spec.post_promotion_policy)
            raise AirflowFailException(
                f"POST-PROMOTION BREACH ({cause}). Not rolling back (post_promotion_policy="
                f"{plan.spec.post_promotion_policy}): to go back, {rollback_hint(plan.spec.service)}; to keep the "
                f"release, clear {self.task_id} to guard again until the retention ends"
            )
        try:
            outcome = post_promotion_rollback(self.route53, self.lambdas, plan, self.run_owner(context), cause)
        except NothingToDo as err:
            return self._nothing(plan, str(err))
        except TransitionRefused as err:
            raise AirflowFailException(f"POST-PROMOTION BREACH ({cause}); ROLLBACK NOT DONE: {err}") from err
        result = {"action": "rolled_back", "cause": cause, **outcome_summary(outcome)}
        if not self.propagated(plan, outcome.change_id):
            self.defer(
                trigger=Route53ChangeTrigger(
                    change_id=outcome.change_id,
                    aws_conn_id=self.aws_conn_id,
                    poll_interval=min(5.0, plan.spec.poll_interval_seconds),
                    timeout_seconds=plan.spec.insync_timeout_seconds,
                ),
                method_name="rolled_back",
                kwargs={"result": result},
            )
        return self.rolled_back(context, {"status": "success"}, result)

    def rolled_back(
        self, context: Context, event: Mapping[str, Any] | None = None, result: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The post-promotion rollback landed (or did not reach INSYNC): say so and end this task failed."""
        plan = self.load_plan(context)
        result = dict(result or {})
        context["ti"].xcom_push(key="rollback", value=result)
        weights = self.read_split(plan)
        split = plan.describe_split(weights)
        insync = (event or {}).get("status") == "success"
        notify(
            context, plan, "post_promotion_rollback", cause=result.get("cause"), live=result.get("live"), split=weights
        )
        raise AirflowFailException(
            f"POST-PROMOTION ROLLBACK: {result.get('cause')}. Traffic is back on {result.get('live')} ({split})"
            + ("" if insync else f"; Route53 did not confirm INSYNC: {(event or {}).get('message')}")
        )

    def _nothing(self, plan: Plan, why: str | None) -> dict[str, Any]:
        why = why or "no deployment state: this run did not promote"
        self.log.info("Nothing to tear down for slot %s: %s", plan.live, why)
        return {"action": "nothing", "slot": plan.live, "reason": why}

    def _retire(self, context: Context, plan: Plan) -> dict[str, Any]:
        """End the retention by compare-and-swap, then clean up the old slot (no traffic, no longer retained)."""
        spec = plan.spec
        owner = self.run_owner(context)
        try:
            retired = retire(self.service_state(plan), owner)
        except NothingToDo as err:
            return self._nothing(plan, str(err))
        except TransitionRefused as err:
            raise AirflowFailException(f"teardown_blue: {err}") from err

        # The retire swap dropped the old slot's check from the state; at 0/100 no record carries it.
        before = retired.before.state
        health_check = before.health_checks.get(before.retained.slot) if before and before.retained else None
        deleted_check = self.route53.delete_health_check(health_check) if health_check else False
        pruned = {}
        for release in spec.functions:
            in_use = {a.version for a in self.lambdas.list_aliases(release.name) if a.version.isdigit()}
            pruned[release.name] = self.lambdas.prune_versions(
                release.name, keep_latest=spec.keep_versions, protect=sorted(in_use)
            )
        self.log.info(
            "Retired slot %s: health check %s, pruned versions %s",
            plan.live,
            health_check if deleted_check else "none",
            pruned,
        )
        result = {
            "action": "retired",
            "slot": plan.live,
            "health_check_deleted": health_check if deleted_check else None,
            "pruned": pruned,
        }
        notify(context, plan, "torn_down", **result)
        return result

"""The teardown stage: after the retention window, retire the slot the promotion left behind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.operators.base import StageOperator
from bluegreen_provider.plan import Plan
from bluegreen_provider.state import NothingToDo, Phase, TransitionRefused, retire

if TYPE_CHECKING:
    from airflow.sdk import Context


class TeardownBlueOperator(StageOperator):
    """
    Wait until the retention recorded at promotion expires, then retire the old slot.

    The wait is a deferral to the absolute deadline in the state record (a triggerer restart keeps
    the clock). Retiring is one state transition (retained → retired) followed by clean-up: the old
    slot's Route53 health check is detached and deleted and Lambda versions no alias uses are pruned
    (keeping ``spec.keep_versions``). It does nothing, says why, and succeeds when there is nothing
    of this run's to retire: another run owns the service now, or the promotion was rolled back.
    Its aliases are kept: the next deployment releases into them.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields,)
    ui_color = "#e0e0e0"

    def execute(self, context: Context) -> dict[str, Any]:
        plan = self.load_plan(context)
        state = self.service_state(plan).state()
        owner = self.run_owner(context)
        if state is None or state.owner != owner or state.phase != Phase.RETAINED or state.retained is None:
            return self._nothing(plan, state and f"the service is {state.phase} by run {state.owner}")
        if datetime.now(UTC) < state.retained.until_dt:
            self.log.info(
                "Slot %s is retained until %s; waiting on the triggerer", state.retained.slot, state.retained.until
            )
            self.defer(
                trigger=DateTimeTrigger(moment=state.retained.until_dt, end_from_trigger=False),
                method_name="execute_complete",
            )
        return self._retire(context, plan)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._retire(context, self.load_plan(context))

    def _nothing(self, plan: Plan, why: str | None) -> dict[str, Any]:
        why = why or "no deployment state: this run did not promote"
        self.log.info("Nothing to tear down for slot %s: %s", plan.live, why)
        return {"action": "nothing", "slot": plan.live, "reason": why}

    def _retire(self, context: Context, plan: Plan) -> dict[str, Any]:
        """End the retention by compare-and-swap, then clean up the old slot (no traffic, no longer retained)."""
        spec = plan.spec
        owner = self.run_owner(context)
        try:
            retire(self.service_state(plan), owner)
        except NothingToDo as err:
            return self._nothing(plan, str(err))
        except TransitionRefused as err:
            raise AirflowFailException(f"teardown_blue: {err}") from err

        health_check = self.route53.get_weighted_sets(plan.zone_id, spec.record_name, spec.record_type)[
            plan.live_set
        ].health_check_id
        deleted_check = False
        if health_check:
            self.route53.set_health_check(
                plan.zone_id,
                spec.record_name,
                spec.record_type,
                plan.live_set,
                None,
                comment=f"bluegreen teardown of {spec.service} {plan.live} ({owner})"[:256],
            )
            deleted_check = self.route53.delete_health_check(health_check)
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
        return {
            "action": "retired",
            "slot": plan.live,
            "health_check_deleted": health_check if deleted_check else None,
            "pruned": pruned,
        }

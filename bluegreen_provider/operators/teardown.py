"""The teardown stage: after the retention window, retire the slot the promotion left behind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger

from bluegreen_provider.operators.base import StageOperator
from bluegreen_provider.plan import Plan

if TYPE_CHECKING:
    from airflow.sdk import Context


class TeardownBlueOperator(StageOperator):
    """
    Wait until the retention record written at promotion expires, then retire the old slot.

    The wait is a deferral to an absolute moment (a triggerer restart keeps the clock). Retiring
    detaches and deletes the old slot's Route53 health check, prunes Lambda versions no alias uses
    (keeping ``spec.keep_versions``) and clears the retention record. It does nothing, says why,
    and succeeds when there is nothing of this run's to retire: no record, a record of another run,
    the old slot taking traffic again (rolled back), a deployment in progress, or the old slot's
    aliases moved by a newer release. Its aliases are kept: the next deployment releases into them.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields,)
    ui_color = "#e0e0e0"

    def execute(self, context: Context) -> dict[str, Any]:
        plan = self.load_plan(context)
        owner = self.run_owner(context)
        retained = self.records(plan).retention()
        if retained is None or retained.owner != owner:
            return self._nothing(plan, retained and f"the retention record belongs to run {retained.owner}")
        if datetime.now(UTC) < retained.until_dt:
            self.log.info("Slot %s is retained until %s; waiting on the triggerer", retained.slot, retained.until)
            self.defer(
                trigger=DateTimeTrigger(moment=retained.until_dt, end_from_trigger=False),
                method_name="execute_complete",
            )
        return self._retire(context, plan)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._retire(context, self.load_plan(context))

    def _nothing(self, plan: Plan, why: str | None) -> dict[str, Any]:
        why = why or "no retention record: this run did not promote, or the old slot was already retired"
        self.log.info("Nothing to tear down for slot %s: %s", plan.live, why)
        return {"action": "nothing", "slot": plan.live, "reason": why}

    def _retire(self, context: Context, plan: Plan) -> dict[str, Any]:
        """Re-read AWS and retire the old slot, unless it is in use again."""
        spec = plan.spec
        owner = self.run_owner(context)
        records = self.records(plan)
        retained = records.retention()
        if retained is None or retained.owner != owner:
            return self._nothing(plan, retained and f"the retention record now belongs to run {retained.owner}")
        if retained.slot != plan.live:
            return self._nothing(plan, f"the retention record names slot {retained.slot}, not {plan.live}")
        lock = records.lock()
        if lock is not None:
            return self._nothing(plan, f"run {lock.owner} is deploying now; the old slot is its to reuse")
        split = self.read_split(plan)
        if split.get(plan.live_set, 0) > 0:
            return self._nothing(
                plan, f"slot {plan.live} takes traffic again ({plan.describe_split(split)}): it was rolled back to"
            )
        moved = {}
        for fn, version in plan.live_versions.items():
            alias = self.lambdas.get_alias(fn, plan.live_alias)
            if alias is None or alias.version != version:
                moved[fn] = f"{version} -> {alias.version if alias else 'deleted'}"
        if moved:
            return self._nothing(plan, f"a newer release reused slot {plan.live} ({moved})")

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
        records.clear_retention(owner=owner)
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

"""The traffic stages: move the candidate's share to one step through the service's router, and promote at 100 %."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bluegreen_provider.notifications import notify
from bluegreen_provider.operators.base import StageOperator
from bluegreen_provider.plan import Plan
from bluegreen_provider.soak import Soak, SoakRules, SoakWatch
from bluegreen_provider.state import StateError, TransitionRefused, shift
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

MARKED_SUCCESS = {"via": "marked success in the UI (no response recorded)"}


class ShiftWeightOperator(StageOperator):
    """
    Set the candidate slot's share of traffic to ``candidate_pct`` with one atomic state transition.

    The service's traffic router carries the split (Route53 weighted sets, or the live Lambda alias's
    weighted routing); the transition is a Route53 change of the state record either way, and the
    stage reads its truth back from AWS: a step already in place is a no-op, and the split read after
    the change must equal the target. Waits for INSYNC on the triggerer, not a worker, and watches
    the candidate meanwhile (the new share serves requests before INSYNC): a breach then fails the
    task and rolls back. Before promotion it judges the last window again. At 100 %
    (promotion) the state records the old slot as retained for emergency rollback. Every change is
    one compare-and-swap transition of the service's state (:func:`bluegreen_provider.state.shift`).

    :param candidate_pct: the candidate's share in percent, 0..100.
    :param approval_task_id: task whose XCom holds the approval decision (promotion steps); a
        ``{"decision": "reject"}`` (or ``"rollback"``) skips this shift, no XCom means the approval
        was marked success in the UI (recorded as such).
    :param check_alarms: refuse to raise the candidate's share while a spec alarm is in a new ALARM
        episode (one already firing before the deployment began is excused while it lasts).
    :param poll_interval: seconds between Route53 ``GetChange`` polls while deferred.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields, "approval_task_id")
    ui_color = "#bbdefb"

    def __init__(
        self,
        *,
        candidate_pct: int,
        approval_task_id: str | None = None,
        check_alarms: bool = True,
        poll_interval: float = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(candidate_pct, bool) or not isinstance(candidate_pct, int) or not 0 <= candidate_pct <= 100:
            raise ValueError(f"candidate_pct must be an int percent in 0..100, got {candidate_pct!r}")
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval <= 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        self.candidate_pct = candidate_pct
        self.approval_task_id = approval_task_id
        self.check_alarms = check_alarms
        self.poll_interval = poll_interval

    def execute(self, context: Context) -> dict[str, Any]:
        plan = self.load_plan(context)
        owner = self.run_owner(context)
        approval = self._approval(context, plan)
        split = self.read_split(plan)
        rising = self.candidate_pct > plan.candidate_pct(split)
        if rising:
            self._refuse_breach(plan, split)

        context["ti"].xcom_push(key="previous_split", value=split)
        submitted_at = datetime.now(UTC)
        try:
            outcome = shift(
                self.service_state(plan),
                owner,
                self.candidate_pct,
                previous_pct=self._previous_pct(context, plan),
                serving=self.candidate_serving(plan),
                retention_seconds=plan.spec.retention_seconds,
                started_at=getattr(context["ti"], "start_date", None),
            )
        except (TransitionRefused, StateError) as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from err
        if outcome is None:
            self.log.info(
                "Split already %s; nothing to change", plan.describe_split(plan.weights_for(self.candidate_pct))
            )
            return self._finish(context, plan, owner, split, approval)
        times = {"submitted_at": submitted_at.isoformat(), "change_id": outcome.change_id}
        # Also in XCom: the resumed task reads it even where a deferral's kwargs are not kept.
        context["ti"].xcom_push(key="change", value=times)
        if not self.propagated(plan, outcome.change_id):
            self.log.info(
                "Submitted %s as change %s; watching the candidate on the triggerer until INSYNC",
                plan.describe_split(outcome.state.split),
                outcome.change_id,
            )
            self.defer(
                trigger=ErrorRateTrigger(
                    soak=self._watch(plan, submitted_at).to_dict(),
                    mode="propagation",
                    change_id=outcome.change_id,
                    timeout_seconds=plan.spec.insync_timeout_seconds,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                ),
                method_name="execute_complete",
                kwargs={"previous_split": split, "approval": approval, "times": times},
                timeout=timedelta(seconds=plan.spec.insync_timeout_seconds + max(60, 2 * self.poll_interval)),
            )
        times["insync_at"] = datetime.now(UTC).isoformat()
        return self._finish(context, plan, owner, split, approval, times)

    def _watch(self, plan: Plan, submitted_at: datetime) -> Soak:
        """What is watched while the change propagates: the candidate, against live, from the submission."""
        rules = replace(SoakRules.from_plan(plan), poll_interval=self.poll_interval)
        baseline = self.watched(plan, plan.live) if self.candidate_pct < 100 else None
        if not self.check_alarms:
            rules = replace(rules, alarms=())
        return Soak(
            stage_pct=self.candidate_pct,
            candidate=self.watched(plan, plan.candidate),
            baseline=baseline,
            rules=rules,
            watch_from=submitted_at,
        )

    def _previous_pct(self, context: Context, plan: Plan) -> int:
        """The declared step before this one in the DAG's traffic steps (0 before the first)."""
        weights = [s.weight for s in plan.spec.steps if s.weight < self.candidate_pct]
        return max(weights, default=0)

    def execute_complete(
        self,
        context: Context,
        event: Mapping[str, Any] | None = None,
        previous_split: Mapping[str, int] | None = None,
        approval: Mapping[str, Any] | None = None,
        times: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        plan = self.load_plan(context)
        status = (event or {}).get("status")
        if status == "breach":
            verdict = {k: event.get(k) for k in ("status", "rule", "message", "figures", "detected_at")}
            context["ti"].xcom_push(key="verdict", value=verdict)
            raise AirflowFailException(
                f"{self.task_id}: breach while Route53 propagated the change ({event['rule']}): {event['message']}; "
                f"traffic now {plan.describe_split(self.read_split(plan))} (rollback restores {plan.live})"
            )
        if status == "error":
            raise AirflowFailException(
                f"{self.task_id}: could not watch the candidate while Route53 propagated the change: "
                f"{event.get('message')}; traffic now {plan.describe_split(self.read_split(plan))}"
            )
        if status != "insync":
            split = self.read_split(plan)
            raise AirflowFailException(
                f"{self.task_id}: Route53 change did not reach INSYNC: "
                f"{(event or {}).get('message', 'no event')}. Traffic now reads {plan.describe_split(split)}; "
                f"name servers may still answer with the previous split."
            )
        pushed = context["ti"].xcom_pull(task_ids=self.task_id, key="change")
        times = {**(pushed if isinstance(pushed, Mapping) else {}), **(times or {})}
        times["insync_at"] = event.get("insync_at")
        return self._finish(context, plan, self.run_owner(context), dict(previous_split or {}), approval, times)

    # -- steps ------------------------------------------------------------------------------------
    def _approval(self, context: Context, plan: Plan) -> dict[str, Any] | None:
        if not self.approval_task_id:
            return None
        decision = context["ti"].xcom_pull(task_ids=self.approval_task_id)
        if decision is None:
            self.log.warning(
                "Task %s left no decision: it was marked success in the UI. Proceeding; who marked it is "
                "in Airflow's audit log.",
                self.approval_task_id,
            )
            return dict(MARKED_SUCCESS)
        if not isinstance(decision, Mapping):
            decision = {"value": decision}
        if str(decision.get("decision", "")).lower() in ("reject", "rollback"):
            split = self.read_split(plan)
            raise AirflowSkipException(
                f"approval rejected ({decision}); not shifting. Traffic stays at {plan.describe_split(split)}."
            )
        return dict(decision)

    def _refuse_breach(self, plan: Plan, split: Mapping[str, int]) -> None:
        """Refuse to raise the candidate's share into a new ALARM episode, or (promotion) into a bad last window."""
        from bluegreen_provider.hooks.cloudwatch import UnknownAlarmError

        watch = SoakWatch(self._watch(plan, datetime.now(UTC)), cloudwatch=self.cloudwatch, route53=self.route53)
        now = datetime.now(UTC)
        try:
            breach = watch.check_alarms(now) if self.check_alarms else None
            if breach is None and self.candidate_pct == 100 and plan.candidate_pct(split) > 0:
                breach = self._final_window(plan, watch, now)
        except UnknownAlarmError as err:
            raise AirflowFailException(f"{self.task_id}: cannot check the rollback alarms: {err}") from err
        if breach is not None:
            context_verdict = f" ({breach['rule']})" if breach.get("rule") != "alarm" else ""
            raise AirflowFailException(
                f"not shifting{context_verdict}: {breach['message']}. {self.task_id} would raise {plan.candidate} "
                f"to {self.candidate_pct}%; traffic stays at {plan.describe_split(split)}."
            )

    def _final_window(self, plan: Plan, watch: SoakWatch, now: datetime) -> dict[str, Any] | None:
        """The last window before promotion, judged again: the soaks' verdicts left it unjudged.

        It starts no earlier than the last change of the deployment state (the last shift, or a
        hold): before that the candidate slot may have served another release of this run, one that
        was rolled back and replaced.
        """
        rules = watch.rules
        start = now - timedelta(seconds=rules.window_seconds)
        state = self.service_state(plan).state()
        if state is not None and state.updated_at:
            start = max(start, datetime.fromisoformat(state.updated_at))
        if (now - start).total_seconds() < 1:
            return None
        watch.soak = replace(watch.soak, baseline=self.watched(plan, plan.live), watch_from=start, clock_start=now)
        self.log.info(
            "Last look before promotion: %s over %s-%s", plan.candidate, watch.soak.watch_from.isoformat(), now
        )
        return watch.check_rates(now)

    def _finish(
        self,
        context: Context,
        plan: Plan,
        owner: str,
        previous_split: Mapping[str, int],
        approval: Mapping[str, Any] | None,
        times: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        weights = plan.weights_for(self.candidate_pct)
        split = self.read_split(plan)
        if split != weights:
            why = self.stopped_by_hand(context, plan) or "someone else changed the record meanwhile"
            raise AirflowFailException(
                f"{self.task_id}: {self.traffic_router(plan.spec, plan.zone_id).source} reads "
                f"{plan.describe_split(split)} after the change, expected "
                f"{plan.describe_split(weights)}: {why}."
            )
        result: dict[str, Any] = {
            "split": split,
            "previous_split": dict(previous_split),
            "candidate_pct": self.candidate_pct,
            "approval": dict(approval) if approval is not None else None,
            # When the change was submitted (watching began) and INSYNC (the soak's clock starts).
            **{k: (times or {}).get(k) for k in ("submitted_at", "insync_at", "change_id")},
        }
        if self.candidate_pct == 100:
            state = self.service_state(plan).state()
            retained = state.retained if state is not None and state.owner == owner else None
            result["retain_until"] = retained.until if retained else None
            self.log.info(
                "Promoted %s. %s",
                plan.candidate,
                f"Slot {retained.slot} keeps the previous release until {retained.until} for emergency rollback."
                if retained
                else "Nothing is retained.",
            )
            notify(
                context,
                plan,
                "promoted",
                split=split,
                approval=approval,
                retained_slot=retained.slot if retained else None,
                retain_until=result["retain_until"],
            )
        else:
            notify(context, plan, "shifted", pct=self.candidate_pct, before=previous_split, after=split)
        self.log.info("Traffic now %s", plan.describe_split(split))
        return result

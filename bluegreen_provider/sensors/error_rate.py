"""The soak of one canary stage: watch the candidate against the threshold, live, its alarms and its health check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bluegreen_provider.operators.base import PLAN_TASK_ID, StageMixin
from bluegreen_provider.rollback import rollback_hint
from bluegreen_provider.soak import Soak, SoakRules, SoakWatch
from bluegreen_provider.state import TransitionRefused, hold, resume
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

    from bluegreen_provider.plan import Plan


class ErrorRateSensor(StageMixin, BaseSensorOperator):
    """
    Soak one traffic step and fail at the first sign the candidate is worse than allowed.

    The rules are :class:`bluegreen_provider.soak.SoakRules` from the run's spec (error rate above
    the threshold, candidate significantly worse than live, a new ALARM episode, the candidate's
    Route53 health check): any keyword named like a rule overrides it for this task. Watching began
    when the shift submitted the weight change (the shift watched the propagation); the soak's clock
    starts at INSYNC and the verdict waits for the datapoints of the whole step to arrive. The wait
    runs in the triggerer, so no worker slot is held; a cleared soak starts a fresh window.

    When live is as bad as the candidate (a service-wide problem), the step is held where it is,
    not rolled back: the run ends at ``hold`` saying so.

    :param stage_pct: the candidate share this soak watches; the split read from Route53 must match.
    :param soak_seconds: how long to watch; 0 means one evaluation of the last ``window_seconds``.
    :param shift_task_id: the task that shifted to this step (its XCom says when the change was
        submitted and INSYNC); default ``shift_<stage_pct>``.
    :param aws_conn_id: Airflow connection for AWS.
    :param region_name: AWS region of the metrics and alarms.
    :param plan_task_id: the task whose XCom holds this run's plan.
    :param rules: overrides of single :class:`~bluegreen_provider.soak.SoakRules` fields
        (``threshold_pct``, ``min_requests``, ``window_seconds``, ``period_seconds``, ``lag_seconds``,
        ``margin``, ``alarms``, ``poll_interval``, ``max_consecutive_errors``, ``no_data_policy``, ...).
    """

    template_fields: Sequence[str] = ("aws_conn_id", "region_name")
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        stage_pct: int,
        soak_seconds: int | None = None,
        shift_task_id: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        plan_task_id: str = PLAN_TASK_ID,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("soft_fail") or kwargs.get("never_fail"):
            raise ValueError(
                "ErrorRateSensor cannot use soft_fail or never_fail: a breached soak would be skipped "
                "instead of failing, and the rollback would not run"
            )
        rules = {name: kwargs.pop(name) for name in SoakRules.overridable() if name in kwargs}
        super().__init__(**kwargs)
        if isinstance(stage_pct, bool) or not isinstance(stage_pct, int) or not 0 < stage_pct < 100:
            raise ValueError(f"stage_pct must be an integer percent in 1..99, got {stage_pct!r}")
        if soak_seconds is not None and (
            isinstance(soak_seconds, bool) or not isinstance(soak_seconds, int | float) or soak_seconds < 0
        ):
            raise ValueError(f"soak_seconds must be a non-negative number, got {soak_seconds!r}")
        rules = {k: v for k, v in rules.items() if v is not None}
        replace(SoakRules(), **rules)  # every override checked now, when the DAG is parsed
        self.stage_pct = stage_pct
        self.soak_seconds = soak_seconds
        self.shift_task_id = shift_task_id or f"shift_{stage_pct}"
        self.rules = rules
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.plan_task_id = plan_task_id

    def soak_for(self, plan: Plan) -> float:
        """This step's soak: the explicit argument, else the spec's step of this share."""
        if self.soak_seconds is not None:
            return self.soak_seconds
        steps = [s for s in plan.spec.steps if s.weight == self.stage_pct]
        if not steps:
            raise AirflowFailException(
                f"no step of {self.stage_pct} % in the deployment spec (steps "
                f"{[s.weight for s in plan.spec.steps]}) and no soak_seconds given to {self.task_id}"
            )
        return steps[0].soak_seconds

    # -- execution ----------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        plan = self.load_plan(context)
        rules = SoakRules.from_plan(plan, **self.rules)
        split = self.read_split(plan)
        share = plan.candidate_pct(split)
        if abs(share - self.stage_pct) > 0.5:
            raise AirflowFailException(
                f"split is {plan.describe_split(split)}, expected {plan.candidate} {self.stage_pct} %: "
                f"clear from shift_{self.stage_pct} (this soak must watch the traffic it was meant to watch)"
            )
        if rules.alarms:
            from bluegreen_provider.hooks.cloudwatch import UnknownAlarmError

            try:
                self.cloudwatch.alarm_states(list(rules.alarms))
            except UnknownAlarmError as err:
                raise AirflowFailException(f"cannot watch the soak: {err}") from err
        soak = self._soak(context, plan, rules)
        self.log.info(
            "Soaking %s at %s %% (%s) for %ss from %s, watched since %s: error rate <= %s %% and not worse than "
            "%sx %s over %ss windows (min %s requests), verdict %ss after the end (metrics lag), alarms %s, "
            "health check %s",
            plan.candidate, self.stage_pct, plan.describe_split(split), soak.soak_seconds, soak.clock_start,
            soak.watch_from, rules.threshold_pct, rules.margin, plan.live, rules.window_seconds,
            rules.min_requests, rules.settle_seconds, list(rules.alarms) or "none", soak.health_check_id or "none",
        )  # fmt: skip
        if soak.soak_seconds == 0:
            return self.execute_complete(context, self._evaluate_now(soak))
        trigger = ErrorRateTrigger(
            soak=soak.to_dict(), mode="soak", aws_conn_id=self.aws_conn_id, region_name=self.region_name
        )
        wait = (soak.verdict_at - datetime.now(UTC)).total_seconds()
        margin = 60 + rules.poll_interval * (rules.max_consecutive_errors + 2)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=max(0, wait) + margin))

    def _soak(self, context: Context, plan: Plan, rules: SoakRules) -> Soak:
        """The step's watch: from the shift's change, with the clock from its INSYNC (fresh when cleared)."""
        now = datetime.now(UTC)
        soak_seconds = self.soak_for(plan)
        shifted = context["ti"].xcom_pull(task_ids=self.shift_task_id) or {}
        first_try = getattr(context["ti"], "try_number", 1) <= 1
        watch_from = _moment(shifted.get("submitted_at")) if first_try else None
        clock_start = _moment(shifted.get("insync_at")) if first_try else None
        if soak_seconds == 0:
            watch_from, clock_start = now - timedelta(seconds=rules.window_seconds), now
        return Soak(
            stage_pct=self.stage_pct,
            candidate=self.watched(plan, plan.candidate),
            baseline=self.watched(plan, plan.live),
            rules=rules,
            watch_from=min(watch_from or now, now),
            soak_seconds=soak_seconds,
            clock_start=min(clock_start or now, now),
            health_check_id=self._health_check(plan),
        )

    def _health_check(self, plan: Plan) -> str | None:
        state = self.service_state(plan).state()
        checks = getattr(state, "health_checks", None) or {}
        if checks.get(plan.candidate):
            return checks[plan.candidate]
        sets = self.route53.get_weighted_sets(plan.zone_id, plan.spec.record_name, plan.spec.record_type)
        return sets[plan.candidate_set].health_check_id

    def _evaluate_now(self, soak: Soak) -> dict[str, Any]:
        """A stage without a soak: one look at the last window, with the hooks of this task."""
        watch = SoakWatch(soak, cloudwatch=self.cloudwatch, route53=self.route53)
        now = datetime.now(UTC)
        return watch.poll(now) or watch.finish(now)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        stopped = self.stopped_by_hand(context, self.load_plan(context))
        if stopped is not None:
            # The person took the candidate's traffic away: what the soak saw since is no verdict on it.
            context["ti"].xcom_push(
                key="verdict",
                value={"status": "stopped", "rule": None, "message": stopped, "figures": None, "detected_at": None},
            )
            raise AirflowFailException(f"soak at {self.stage_pct} % stopped: {stopped}")
        status = (event or {}).get("status")
        if status in ("breach", "no_data", "error", "degraded"):
            # Kept beside the failure so the timeline, the demo and people can see why without the log; the
            # samples and the watch's times let the timeline chart the soak that failed.
            kept = ("status", "rule", "message", "figures", "detected_at", "samples", "watched_from", "started_at")
            verdict = {k: event.get(k) for k in kept}
            context["ti"].xcom_push(key="verdict", value=verdict)
        if status == "clean":
            self._resume_if_held(context)
            return {**event["summary"], "outcome": "clean"}
        if status == "no_data":
            plan = self.load_plan(context)
            policy = SoakRules.from_plan(plan, **self.rules).no_data_policy
            if policy == "pass":
                self.log.warning("%s; no_data_policy is 'pass', so the soak passes", event["message"])
                return {**event["summary"], "outcome": "no_data_passed"}
            raise AirflowFailException(f"soak at {self.stage_pct} % failed: {event['message']}{self._traffic(context)}")
        if status == "degraded":
            self._hold(context, event)
        if status == "breach":
            during = " while Route53 propagated the change" if event.get("propagating") else ""
            raise AirflowFailException(
                f"soak at {self.stage_pct} % breached ({event['rule']}){during}: {event['message']}"
                f"{self._traffic(context)}"
            )
        if status == "error":
            raise AirflowFailException(
                f"soak at {self.stage_pct} % aborted: {event['message']}{self._traffic(context)}"
            )
        raise AirflowFailException(f"soak at {self.stage_pct} % got an unexpected event from its trigger: {event!r}")

    def _resume_if_held(self, context: Context) -> None:
        """A step this soak held (live degraded) soaked clean now: let the run shift on."""
        plan = self.load_plan(context)
        try:
            resumed = resume(self.service_state(plan), self.run_owner(context), f"soak at {self.stage_pct} % clean")
        except TransitionRefused as err:  # the next shift refuses, and says why, if this matters
            self.log.warning("Soak clean; the deployment state says: %s", err)
            return
        if resumed is not None:
            self.log.info("The hold at %s %% is lifted: the soak is clean again", self.stage_pct)

    def _hold(self, context: Context, event: Mapping[str, Any]) -> NoReturn:
        """Live is as bad as the candidate: keep the split (rolling back would not help) and stop the run."""
        plan = self.load_plan(context)
        reason = f"held at {self.stage_pct} %: {event['message']}"
        try:
            hold(self.service_state(plan), self.run_owner(context), reason)
        except TransitionRefused as err:
            raise AirflowFailException(f"soak at {self.stage_pct} %: {event['message']}; and not held: {err}") from err
        raise AirflowSkipException(
            f"{reason}. Traffic stays at {plan.describe_split(self.read_split(plan))}. When live recovers, clear "
            f"{self.task_id} to soak again; to go back, {rollback_hint(plan.spec.service)}"
        )

    def _traffic(self, context: Context) -> str:
        """What traffic looks like now, read back from Route53, for the on-call engineer."""
        try:
            plan = self.load_plan(context)
            return f"; traffic now {plan.describe_split(self.read_split(plan))} (rollback restores {plan.live})"
        except Exception as err:
            return f"; traffic split could not be read ({type(err).__name__}: {err})"


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None

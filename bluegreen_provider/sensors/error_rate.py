"""The soak of one canary stage: watch the candidate's error rate, alarms and health check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.hooks.cloudwatch import ErrorRateQuery, UnknownAlarmError
from bluegreen_provider.operators.base import PLAN_TASK_ID, StageMixin
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger, SoakWatch

if TYPE_CHECKING:
    from airflow.sdk import Context

    from bluegreen_provider.plan import Plan


def _positive(name: str, value: float | None, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be a {'non-negative' if zero_ok else 'positive'} number, got {value!r}")


def _alarm_names(firing: Sequence[Any]) -> list[str]:
    """Names of the alarms the plan found firing (records are dicts with ``name``, or bare names)."""
    names = []
    for alarm in firing:
        if isinstance(alarm, str):
            names.append(alarm)
        elif isinstance(alarm, Mapping) and (alarm.get("name") or alarm.get("AlarmName")):
            names.append(str(alarm.get("name") or alarm.get("AlarmName")))
    return names


class ErrorRateSensor(StageMixin, BaseSensorOperator):
    """
    Soak one traffic step and fail at the first sign the candidate is worse than allowed.

    Three rules break the soak (story AC 6 and 7): the candidate's error rate over a sliding window
    above ``threshold_pct`` (only once ``min_requests`` were seen), a named CloudWatch alarm in ALARM
    (alarms already firing when the deployment was planned are ignored unless they fire again), and
    the candidate set's Route53 health check reporting unhealthy. The wait runs in the triggerer, so
    no worker slot is held; the soak end is absolute, so a restarted triggerer keeps the same clock.

    Every ``None`` argument is taken from the run's deployment spec.

    :param stage_pct: the candidate share this soak watches; the split read from Route53 must match.
    :param soak_seconds: how long to watch; 0 means one evaluation of the last ``window_seconds``.
    :param poll_interval: seconds between polls.
    :param threshold_pct: error rate in percent above which the soak fails.
    :param min_requests: requests needed before a window, or the whole soak, is judged.
    :param window_seconds: sliding window of each poll's error rate.
    :param period_seconds: CloudWatch period (1, 5, 10, 30 or a multiple of 60).
    :param no_data_policy: ``"fail"`` or ``"pass"`` when the whole soak saw fewer than ``min_requests``.
    :param alarms: CloudWatch alarm names watched during the soak.
    :param max_consecutive_errors: polls in a row that may fail to read AWS before the soak fails.
    :param aws_conn_id: Airflow connection for AWS.
    :param region_name: AWS region of the metrics and alarms.
    :param plan_task_id: the task whose XCom holds this run's plan.
    """

    template_fields: Sequence[str] = ("aws_conn_id", "region_name")
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        stage_pct: int,
        soak_seconds: int | None = None,
        poll_interval: float | None = None,
        threshold_pct: float | None = None,
        min_requests: int | None = None,
        window_seconds: int = 300,
        period_seconds: int | None = None,
        no_data_policy: str | None = None,
        alarms: Sequence[str] | None = None,
        max_consecutive_errors: int = 3,
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
        super().__init__(**kwargs)
        if isinstance(stage_pct, bool) or not isinstance(stage_pct, int) or not 0 < stage_pct < 100:
            raise ValueError(f"stage_pct must be an integer percent in 1..99, got {stage_pct!r}")
        _positive("soak_seconds", soak_seconds, zero_ok=True)
        _positive("poll_interval", poll_interval)
        _positive("min_requests", min_requests, zero_ok=True)
        _positive("window_seconds", window_seconds)
        _positive("period_seconds", period_seconds)
        if threshold_pct is not None and not (isinstance(threshold_pct, int | float) and 0 < threshold_pct <= 100):
            raise ValueError(f"threshold_pct must be in (0, 100], got {threshold_pct!r}")
        if no_data_policy not in (None, "fail", "pass"):
            raise ValueError(f"no_data_policy must be 'fail' or 'pass', got {no_data_policy!r}")
        if isinstance(alarms, str):
            raise ValueError(f"alarms must be a list of alarm names, got the string {alarms!r}")
        if (
            isinstance(max_consecutive_errors, bool)
            or not isinstance(max_consecutive_errors, int)
            or (max_consecutive_errors < 1)
        ):
            raise ValueError(f"max_consecutive_errors must be an int >= 1, got {max_consecutive_errors!r}")
        self.stage_pct = stage_pct
        self.soak_seconds = soak_seconds
        self.poll_interval = poll_interval
        self.threshold_pct = threshold_pct
        self.min_requests = min_requests
        self.window_seconds = window_seconds
        self.period_seconds = period_seconds
        self.no_data_policy = no_data_policy
        self.alarms = None if alarms is None else list(alarms)
        self.max_consecutive_errors = max_consecutive_errors
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.plan_task_id = plan_task_id

    # -- settings: explicit arguments win over the spec ----------------------------------------
    def settings(self, plan: Plan) -> dict[str, Any]:
        spec = plan.spec
        soak = self.soak_seconds
        if soak is None:
            steps = [s for s in spec.steps if s.weight == self.stage_pct]
            if not steps:
                raise AirflowFailException(
                    f"no step of {self.stage_pct} % in the deployment spec (steps "
                    f"{[s.weight for s in spec.steps]}) and no soak_seconds given to {self.task_id}"
                )
            soak = steps[0].soak_seconds
        return {
            "soak_seconds": soak,
            "poll_interval": self.poll_interval or spec.poll_interval_seconds,
            "threshold_pct": self.threshold_pct or spec.error_rate_threshold_pct,
            "min_requests": spec.min_requests if self.min_requests is None else self.min_requests,
            "window_seconds": self.window_seconds,
            "period_seconds": self.period_seconds or spec.metrics_period_seconds,
            "no_data_policy": self.no_data_policy or spec.no_data_policy,
            "alarms": list(spec.alarms) if self.alarms is None else self.alarms,
        }

    def query(self, plan: Plan) -> ErrorRateQuery:
        spec = plan.spec
        if spec.metrics_source == "apigateway":
            return ErrorRateQuery.api_gateway(spec.slots[plan.candidate].api_name)
        return ErrorRateQuery.lambda_aliases([f.name for f in spec.functions], plan.candidate_alias)

    # -- execution ----------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        plan = self.load_plan(context)
        cfg = self.settings(plan)
        split = self.read_split(plan)
        share = plan.candidate_pct(split)
        if abs(share - self.stage_pct) > 0.5:
            raise AirflowFailException(
                f"split is {plan.describe_split(split)}, expected {plan.candidate} {self.stage_pct} %: "
                f"clear from shift_{self.stage_pct} (this soak must watch the traffic it was meant to watch)"
            )
        if cfg["alarms"]:
            try:
                self.cloudwatch.alarm_states(cfg["alarms"])
            except UnknownAlarmError as err:
                raise AirflowFailException(f"cannot watch the soak: {err}") from err
        sets = self.route53.get_weighted_sets(plan.zone_id, plan.spec.record_name, plan.spec.record_type)
        health_check_id = sets[plan.candidate_set].health_check_id
        now = datetime.now(UTC)
        soak = cfg["soak_seconds"]
        start = now - timedelta(seconds=cfg["window_seconds"]) if soak == 0 else now
        trigger = ErrorRateTrigger(
            query=self.query(plan).to_dict(),
            soak_start=start.isoformat(),
            soak_end=(now + timedelta(seconds=soak)).isoformat(),
            stage_pct=self.stage_pct,
            slot=plan.candidate,
            threshold_pct=cfg["threshold_pct"],
            min_requests=cfg["min_requests"],
            window_seconds=cfg["window_seconds"],
            period_seconds=cfg["period_seconds"],
            poll_interval=cfg["poll_interval"],
            alarm_names=cfg["alarms"],
            ignored_alarms=_alarm_names(plan.alarms_firing),
            ignored_since=plan.created_at or None,
            health_check_id=health_check_id,
            max_consecutive_errors=self.max_consecutive_errors,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
        )
        self.log.info(
            "Soaking %s at %s %% (%s) for %ss: error rate <= %s %% over %ss windows (min %s requests), "
            "alarms %s, health check %s",
            plan.candidate, self.stage_pct, plan.describe_split(split), soak, cfg["threshold_pct"],
            cfg["window_seconds"], cfg["min_requests"], cfg["alarms"] or "none", health_check_id or "none",
        )  # fmt: skip
        if soak == 0:
            return self.execute_complete(context, self._evaluate_now(trigger, now))
        margin = 60 + cfg["poll_interval"] * (self.max_consecutive_errors + 2)
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=soak + margin),
        )

    def _evaluate_now(self, trigger: ErrorRateTrigger, now: datetime) -> dict[str, Any]:
        """A stage without a soak: one look at the last window, with the hooks of this task."""
        watch: SoakWatch = trigger.watch()
        watch.cloudwatch, watch.route53 = self.cloudwatch, self.route53
        return watch.poll(now) or watch.finish(now)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        status = (event or {}).get("status")
        if status in ("breach", "no_data", "error"):
            # Kept beside the failure so the timeline, the demo and people can see why without the log.
            verdict = {k: event.get(k) for k in ("status", "rule", "message", "figures", "detected_at")}
            context["ti"].xcom_push(key="verdict", value=verdict)
        if status == "clean":
            return {**event["summary"], "outcome": "clean"}
        if status == "no_data":
            policy = self.no_data_policy or self.load_plan(context).spec.no_data_policy
            if policy == "pass":
                self.log.warning("%s; no_data_policy is 'pass', so the soak passes", event["message"])
                return {**event["summary"], "outcome": "no_data_passed"}
            raise AirflowFailException(f"soak at {self.stage_pct} % failed: {event['message']}{self._traffic(context)}")
        if status == "breach":
            raise AirflowFailException(
                f"soak at {self.stage_pct} % breached ({event['rule']}): {event['message']}{self._traffic(context)}"
            )
        if status == "error":
            raise AirflowFailException(
                f"soak at {self.stage_pct} % aborted: {event['message']}{self._traffic(context)}"
            )
        raise AirflowFailException(f"soak at {self.stage_pct} % got an unexpected event from its trigger: {event!r}")

    def _traffic(self, context: Context) -> str:
        """What traffic looks like now, read back from Route53, for the on-call engineer."""
        try:
            plan = self.load_plan(context)
            return f"; traffic now {plan.describe_split(self.read_split(plan))} (rollback restores {plan.live})"
        except Exception as err:
            return f"; traffic split could not be read ({type(err).__name__}: {err})"

"""The health gate before any traffic reaches the candidate (story AC 5)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.operators.base import StageOperator
from bluegreen_provider.state import TransitionRefused, record_health_check
from bluegreen_provider.triggers.health import HealthProbeTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

    from bluegreen_provider.plan import Plan
    from bluegreen_provider.spec import Slot


CALLER_REFERENCE_PREFIX = "bluegreen-"


def caller_reference(record_name: str, slot: str, fqdn: str, owner: str) -> str:
    """Stable per deployment, record, slot and endpoint, so a re-run reuses the health check (max 64 chars).

    Route53 never accepts a CallerReference again once its check is deleted (teardown deletes the
    old slot's check), so each deployment names its own.
    """
    key = f"{record_name.rstrip('.').lower()}|{slot}|{fqdn.lower()}|{owner}"
    return f"{CALLER_REFERENCE_PREFIX}{slot}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def health_check_fqdn(slot: Slot) -> str | None:
    if slot.health_check_fqdn:
        return slot.health_check_fqdn
    return urlparse(slot.health_url).hostname if slot.health_url else None


class HealthCheckOperator(StageOperator):
    """
    Check the candidate slot before it takes traffic: a Route53 health check, then an HTTP probe.

    The Route53 check (HTTPS, the spec's path, port 443, every 30 s, unhealthy after 3 failures) is
    created once per deployment, record, slot and endpoint and recorded as the candidate's check in
    the deployment state, replacing (and deleting) the one an earlier deployment left for this slot.
    The shifts put it on the candidate's weighted set only while both sets take traffic: at weight 0
    it would let Route53 fail over to the unvetted candidate. The soaks read it through
    GetHealthCheckStatus, attached or not. The HTTP probe of ``health_url`` waits for
    ``health.consecutive_successes`` 2xx answers in a row within ``health.deadline_seconds`` and runs
    in the triggerer, holding no worker slot. Nothing here changes weights.

    :param request_timeout_seconds: timeout of each probe request.
    :param aws_conn_id: Airflow connection for AWS.
    :param region_name: AWS region.
    :param plan_task_id: the task whose XCom holds this run's plan.
    """

    template_fields: Sequence[str] = ("aws_conn_id", "region_name")
    ui_color = "#d5f5e3"

    def __init__(self, *, request_timeout_seconds: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(request_timeout_seconds, bool)
            or not isinstance(request_timeout_seconds, int | float)
            or (request_timeout_seconds <= 0)
        ):
            raise ValueError(f"request_timeout_seconds must be a positive number, got {request_timeout_seconds!r}")
        self.request_timeout_seconds = request_timeout_seconds

    def execute(self, context: Context) -> Any:
        plan = self.load_plan(context)
        spec, slot = plan.spec, plan.spec.slots[plan.candidate]
        health = spec.health
        fqdn = health_check_fqdn(slot)
        if health.route53_check and not fqdn:
            raise AirflowFailException(
                f"health.route53_check is on but slots.{slot.name} has neither health_check_fqdn nor "
                f"health_url; set one, or turn route53_check off. Nothing was changed."
            )
        split = self.read_split(plan)  # also proves the candidate's weighted set exists
        route53 = {"route53_health_check_id": None, "route53_status": "disabled", "warnings": []}
        if health.route53_check:
            route53.update(self._route53_check(context, plan, fqdn, split))
        if not slot.health_url:
            warning = f"slots.{slot.name}.health_url is not set: HTTP probe skipped"
            self.log.warning(warning)
            route53["warnings"].append(warning)
            return {**route53, "probe": {"url": None, "skipped": warning}}
        now = datetime.now(UTC)
        self.log.info(
            "Probing %s: %s consecutive 2xx within %ss, every %ss",
            slot.health_url, health.consecutive_successes, health.deadline_seconds, health.probe_interval_seconds,
        )  # fmt: skip
        self.defer(
            trigger=HealthProbeTrigger(
                url=slot.health_url,
                consecutive_successes=health.consecutive_successes,
                started_at=now.isoformat(),
                deadline_at=(now + timedelta(seconds=health.deadline_seconds)).isoformat(),
                interval_seconds=health.probe_interval_seconds,
                request_timeout_seconds=self.request_timeout_seconds,
            ),
            method_name="execute_complete",
            kwargs={"route53": route53},
            timeout=timedelta(seconds=health.deadline_seconds + self.request_timeout_seconds + 60),
        )

    def _route53_check(self, context: Context, plan: Plan, fqdn: str, split: dict[str, int]) -> dict[str, Any]:
        spec, slot, health = plan.spec, plan.spec.slots[plan.candidate], plan.spec.health
        owner = self.run_owner(context)
        check_id = self.route53.ensure_health_check(
            caller_reference=caller_reference(spec.record_name, slot.name, fqdn, owner),
            fqdn=fqdn,
            path=health.path,
            port=health.port,
            check_type=health.check_type,
            request_interval=health.request_interval,
            failure_threshold=health.failure_threshold,
            tags={"Name": f"bluegreen {spec.record_name} {slot.name}", "bluegreen:service": spec.service},
        )
        try:
            recorded = record_health_check(self.service_state(plan), owner, plan.candidate, check_id)
        except TransitionRefused as err:
            raise AirflowFailException(f"health_check: {err}") from err
        previous = (
            recorded.before.state.health_checks.get(plan.candidate) if recorded and recorded.before.state else None
        )
        if previous and previous != check_id:
            self._retire_superseded(previous)
        status = self.route53.health_check_status(check_id)
        if status.checkers and not status.healthy:
            raise AirflowFailException(
                f"Route53 health check {check_id} of {slot.name} ({fqdn}{health.path}) unhealthy: "
                f"{status.detail}; {self._traffic(plan, split)}"
            )
        state = "healthy" if status.checkers else "pending"
        self.log.info(
            "Route53 health check %s of %s: %s (%s); recorded in the deployment state, on set %s only at the "
            "canary steps",
            check_id, slot.name, state, status.detail, plan.candidate_set,
        )  # fmt: skip
        return {"route53_health_check_id": check_id, "route53_status": state}

    def _retire_superseded(self, health_check_id: str) -> None:
        """Delete the check an earlier deployment left on this set; never one a person created."""
        reference = self.route53.health_check_caller_reference(health_check_id)
        if reference and reference.startswith(CALLER_REFERENCE_PREFIX):
            self.route53.delete_health_check(health_check_id)
            self.log.info("Deleted health check %s left by an earlier deployment of this slot", health_check_id)

    @staticmethod
    def _traffic(plan: Plan, split: dict[str, int]) -> str:
        described = plan.describe_split(split)
        return f"traffic untouched ({described})" if plan.candidate_pct(split) == 0 else f"traffic now {described}"

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, route53: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        plan = self.load_plan(context)
        event = event or {}
        if event.get("status") != "success":
            try:
                traffic = self._traffic(plan, self.read_split(plan))
            except Exception as err:
                traffic = f"traffic split could not be read ({type(err).__name__}: {err})"
            raise AirflowFailException(
                f"health probe of {plan.candidate} failed: {event.get('message', f'unexpected event {event!r}')} "
                f"({event.get('url')}); {traffic}"
            )
        self.log.info("Health probe of %s passed: %s", plan.candidate, event["message"])
        probe = {k: event[k] for k in ("url", "attempts", "successes", "last_status", "duration_s")}
        return {**(route53 or {}), "probe": probe}

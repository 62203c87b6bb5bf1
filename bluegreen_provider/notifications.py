"""What a deployment tells people, in words: its events, their messages, and the sending.

A stage that changes something (a shift, the promotion, a hold, a rollback, the teardown) calls
:func:`notify` once it is done; the approval hands :class:`ApprovalNotifier` to Airflow's HITL
operator, which calls it with the request (so the message carries the Required Actions link);
"overdue" is Airflow's Deadline Alert (:func:`overdue_alert`), checked against the state record.
Messages go through Airflow's notifier interface: the amazon provider's ``SnsNotifier`` and the
Slack provider's ``SlackWebhookNotifier``, as the service config's ``notifications`` names them.

Sending never fails a stage: a deployment must not roll back, or stop short of a rollback, because
a chat service is down. A failed notifier is logged as a warning and the stage goes on. The
notifiers' ``notify`` is called directly, never through Jinja: a release label or an alarm reason
in a message is text, not a template to render with the run's context.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from bluegreen_provider.spec import DeploymentSpec, NotificationSpec

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.definitions.deadline import DeadlineAlert

    from bluegreen_provider.plan import Plan

log = logging.getLogger(__name__)

PLAN_TASK_ID = "plan"
SLACK_TIMEOUT_SECONDS = 10
_SNS_SUBJECT_CHARS = 99  # SNS refuses a subject of 100 characters or more
_CAUSE_CHARS = 600

TITLES = {
    "approval_needed": "approval needed",
    "shifted": "traffic shifted",
    "held": "deployment held",
    "rolled_back": "rolled back",
    "promoted": "promoted",
    "torn_down": "old slot retired",
    "post_promotion_rollback": "rolled back after promotion",
    "post_promotion_breach": "breach after promotion",
    "overdue": "deployment overdue",
}


@dataclass(frozen=True)
class Notice:
    """One message: the event it tells of, a subject line (SNS) and the text."""

    event: str
    service: str
    subject: str
    text: str


@dataclass(frozen=True)
class About:
    """The deployment a message is about: the service, the run, and how to name its split."""

    service: str
    run: str
    live: str | None = None
    candidate: str | None = None
    set_names: Mapping[str, str] | None = None

    @classmethod
    def of(cls, plan: Plan, run: str) -> About:
        return cls.of_spec(plan.spec, run, plan.live, plan.candidate)

    @classmethod
    def of_spec(cls, spec: DeploymentSpec, run: str, live: str | None, candidate: str | None = None) -> About:
        """A message about a service outside a deployment run (the emergency rollback has no plan)."""
        names = {s.set_identifier: s.name for s in spec.slots.values()}
        return cls(spec.service, run, live, candidate, names)

    def split(self, weights: Mapping[str, int] | None) -> str:
        """'blue 90 / green 10', as every other message of the deployment says it."""
        if not weights:
            return "an unknown split"
        names = self.set_names or {}
        return " / ".join(f"{names.get(k, k)} {v}" for k, v in sorted(weights.items()))


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "an unknown time"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    from bluegreen_provider.sensors.approval import duration

    return duration(seconds)


def _cut(text: Any) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _CAUSE_CHARS else f"{text[:_CAUSE_CHARS]}…"


def _rollback_hint(service: str) -> str:
    from bluegreen_provider.rollback import rollback_hint

    return rollback_hint(service)


# -- the messages, one per event ----------------------------------------------------------------------


def _approval_needed(
    a: About,
    *,
    split: Mapping[str, int] | None = None,
    link: str | None = None,
    deadline: str | None = None,
    policy: str = "hold",
    approvers: Sequence[str] = (),
    not_auto_approved: Sequence[str] | None = None,
    **_: Any,
) -> str:
    on_timeout = "the split is held" if policy == "hold" else "the deployment rolls back"
    answer_by = f"Answer by {_when(deadline)}, else {on_timeout}." if deadline else "No deadline."
    why = f" Not auto-approved: {'; '.join(not_auto_approved)}." if not_auto_approved else ""
    who = f" Who may answer: {', '.join(approvers)}." if approvers else ""
    return (
        f"{a.service}: approval needed to promote {a.candidate} to 100 % (traffic {a.split(split)}).{why} "
        f"{answer_by}{who} Approve or reject: {link or 'the approval task'}"
    )


def _shifted(
    a: About, *, pct: int, before: Mapping[str, int] | None = None, after: Mapping[str, int] | None = None, **_: Any
) -> str:
    moved = f"{a.split(before)} → {a.split(after)}" if before != after else f"{a.split(after)}, already in place"
    return f"{a.service}: {a.candidate} now takes {pct} % of traffic ({moved})."


def _held(a: About, *, split: Mapping[str, int] | None = None, why: str = "", by_soak: bool = False, **_: Any) -> str:
    then = (
        "When live recovers, clear the soak to watch again"
        if by_soak
        else "To promote: clear 'approval' with its downstream tasks and approve"
    )
    return (
        f"{a.service}: HELD at {a.split(split)}: {_cut(why)}. Traffic stays split. {then}; to roll back: "
        f"{_rollback_hint(a.service)}."
    )


def _rolled_back(
    a: About,
    *,
    failed: Sequence[str] = (),
    cause: str | None = None,
    split: Mapping[str, int] | None = None,
    warning: str | None = None,
    **_: Any,
) -> str:
    # The cause names the failed stage ("soak_10 failed (error_rate): …"); without one, the stages do.
    cause = cause or (f"{', '.join(failed)} failed" if failed else "the run ended unfinished")
    text = f"{a.service}: ROLLED BACK to {a.live}: {_cut(cause)}. Traffic now {a.split(split)}."
    if warning:
        text += f" WARNING: {_cut(warning)}; a person must look at {a.live}."
    return text


def _promoted(
    a: About,
    *,
    split: Mapping[str, int] | None = None,
    approval: Mapping[str, Any] | None = None,
    retained_slot: str | None = None,
    retain_until: str | None = None,
    **_: Any,
) -> str:
    decided = _decision(approval)
    kept = (
        f" {retained_slot} keeps the previous release until {_when(retain_until)} for an emergency rollback "
        f"({_rollback_hint(a.service)})."
        if retained_slot
        else " Nothing is retained."
    )
    return f"{a.service}: PROMOTED {a.candidate} to 100 % ({a.split(split)}), {decided}.{kept}"


def _decision(approval: Mapping[str, Any] | None) -> str:
    if not approval:
        return "no approval step"
    if approval.get("via") == "rule":
        return str(approval.get("by"))
    if approval.get("via") == "response":
        return f"approved by {approval.get('by') or 'an unknown user'} at {_when(approval.get('at'))}"
    return str(approval.get("via") or "approved")


def _torn_down(
    a: About,
    *,
    slot: str,
    health_check_deleted: str | None = None,
    pruned: Mapping[str, Sequence[str]] | None = None,
    **_: Any,
) -> str:
    versions = sum(len(v) for v in (pruned or {}).values())
    check = f"health check {health_check_deleted} deleted" if health_check_deleted else "no health check to delete"
    # After the promotion the plan's candidate is the live slot.
    return (
        f"{a.service}: retention over, slot {slot} retired ({check}, {versions} unused Lambda version"
        f"{'' if versions == 1 else 's'} pruned); {a.candidate} stays live."
    )


def _post_promotion_rollback(
    a: About, *, cause: str, live: str | None = None, split: Mapping[str, int] | None = None, **_: Any
) -> str:
    return (
        f"{a.service}: POST-PROMOTION ROLLBACK: {_cut(cause)}. Traffic is back on the retained slot {live} "
        f"({a.split(split)})."
    )


def _post_promotion_breach(a: About, *, cause: str, policy: str = "notify", **_: Any) -> str:
    return (
        f"{a.service}: POST-PROMOTION BREACH: {_cut(cause)}. Not rolled back (post_promotion_policy={policy}): "
        f"to go back, {_rollback_hint(a.service)}."
    )


def _overdue(
    a: About,
    *,
    after_seconds: float,
    queued_at: str | None = None,
    phase: str = "",
    split: Mapping[str, int] | None = None,
    triggered_by: str | None = None,
    **_: Any,
) -> str:
    by = f" by {triggered_by}" if triggered_by else ""
    return (
        f"{a.service}: deployment OVERDUE: {_duration(after_seconds)} after it was queued{by} at {_when(queued_at)} "
        f"it has neither promoted nor rolled back; it is {phase} at {a.split(split)}."
    )


MESSAGES: dict[str, Callable[..., str]] = {
    "approval_needed": _approval_needed,
    "shifted": _shifted,
    "held": _held,
    "rolled_back": _rolled_back,
    "promoted": _promoted,
    "torn_down": _torn_down,
    "post_promotion_rollback": _post_promotion_rollback,
    "post_promotion_breach": _post_promotion_breach,
    "overdue": _overdue,
}


def compose(event: str, about: About, **facts: Any) -> Notice:
    """The message for ``event`` with its figures; the run is named last, for the reader who acts on it."""
    text = f"{MESSAGES[event](about, **facts)} Run: {about.run}."
    subject = f"{about.service}: {TITLES[event]}"[:_SNS_SUBJECT_CHARS]
    return Notice(event, about.service, subject, text)


def what_broke(context: Context, task_ids: Sequence[str]) -> str | None:
    """The first failed stage's verdict (rule and figures), as its watcher pushed it beside the failure."""
    for task_id in task_ids:
        try:
            verdict = context["ti"].xcom_pull(task_ids=task_id, key="verdict")
        except Exception:
            continue
        if isinstance(verdict, Mapping) and verdict.get("message"):
            rule = f" ({verdict['rule']})" if verdict.get("rule") else ""
            return f"{task_id} failed{rule}: {verdict['message']}"
    return None


# -- sending ------------------------------------------------------------------------------------------


def notifiers_for(settings: NotificationSpec, notice: Notice) -> list[tuple[str, BaseNotifier]]:
    """The provider notifiers that carry ``notice``, by target name."""
    built: list[tuple[str, BaseNotifier]] = []
    if settings.sns is not None:
        from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

        built.append(
            (
                "sns",
                SnsNotifier(
                    aws_conn_id=settings.sns.aws_conn_id,
                    region_name=settings.sns.region_name,
                    target_arn=settings.sns.target_arn,
                    subject=notice.subject,
                    message=notice.text,
                    # Subscribers can filter on them (SNS subscription filter policies).
                    message_attributes={"event": notice.event, "service": notice.service},
                ),
            )
        )
    if settings.slack is not None:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        built.append(
            (
                "slack",
                SlackWebhookNotifier(
                    slack_webhook_conn_id=settings.slack.slack_webhook_conn_id,
                    text=notice.text,
                    timeout=SLACK_TIMEOUT_SECONDS,
                ),
            )
        )
    return built


def send(settings: NotificationSpec, notice: Notice, context: Mapping[str, Any] | None = None) -> list[str]:
    """Send ``notice`` to every target; returns the targets that took it. Never raises."""
    delivered = []
    try:
        notifiers = notifiers_for(settings, notice)
    except Exception as err:
        log.warning(
            "Notification %r not sent: its notifiers could not be built (%s); the deployment goes on", notice.event, err
        )
        return []
    for name, notifier in notifiers:
        try:
            notifier.notify(context or {})
        except Exception as err:
            log.warning(
                "Notification %r to %s failed (%s: %s); the deployment goes on",
                notice.event,
                name,
                type(err).__name__,
                err,
            )
        else:
            delivered.append(name)
    if delivered:
        log.info("Notified %s: %s", ", ".join(delivered), notice.text)
    return delivered


def _run(context: Mapping[str, Any]) -> str:
    from bluegreen_provider.state import owner_of

    dag_run = context["dag_run"]
    return owner_of(dag_run.dag_id, dag_run.run_id)


def notify(context: Context, plan: Plan, event: str, **facts: Any) -> list[str]:
    """Tell the configured targets about ``event`` of this run; returns who took it. Never raises."""
    return notify_about(context, plan.spec, lambda run: About.of(plan, run), event, **facts)


def notify_about(
    context: Context, spec: DeploymentSpec, about: Callable[[str], About], event: str, **facts: Any
) -> list[str]:
    """:func:`notify` for a stage without a plan: ``about(run)`` says what the message is about."""
    settings = spec.notifications
    if settings is None or event not in settings.events:
        return []
    try:
        notice = compose(event, about(_run(context)), **facts)
    except Exception:
        log.warning("Notification %r not sent: its message could not be written", event, exc_info=True)
        return []
    return send(settings, notice, context)


class ApprovalNotifier(BaseNotifier):
    """The approval request's notifier, handed to the HITL operator (``notifiers=``).

    HITL calls it when the request is written; the message has the Required Actions link, the split,
    the deadline and who may answer, read from the request the approval task recorded.

    :param settings: the service config's ``notifications``.
    :param plan_task_id: the task whose XCom holds this run's plan.
    """

    def __init__(self, settings: NotificationSpec, *, plan_task_id: str = PLAN_TASK_ID) -> None:
        super().__init__()
        self.settings = settings
        self.plan_task_id = plan_task_id

    def notify(self, context: Context) -> None:
        if "approval_needed" not in self.settings.events:
            return
        try:
            from bluegreen_provider.plan import Plan

            ti = context["ti"]
            plan = Plan.from_dict(ti.xcom_pull(task_ids=self.plan_task_id))
            request = ti.xcom_pull(task_ids=ti.task_id, key="request") or {}
            task = context["task"]
            facts = {
                "split": request.get("split"),
                "deadline": request.get("deadline"),
                "policy": request.get("timeout_policy") or plan.spec.approval_timeout_policy,
                "not_auto_approved": request.get("not_auto_approved"),
                "approvers": [u.get("name") or u.get("id") for u in (getattr(task, "assigned_users", None) or [])],
                "link": required_actions_link(context),
            }
            notice = compose("approval_needed", About.of(plan, _run(context)), **facts)
        except Exception:
            log.warning("Approval notification not sent: its message could not be written", exc_info=True)
            return
        send(self.settings, notice, context)


def required_actions_link(context: Context) -> str:
    """The Required Actions page of this approval, as HITL builds it; a path when ``[api] base_url`` is unset."""
    from urllib.parse import urlparse

    from airflow.providers.standard.operators.hitl import HITLOperator

    try:
        return HITLOperator.generate_link_to_ui_from_context(context=context)
    except ValueError:  # no base URL configured: the path still tells a person where to click
        url = urlparse(HITLOperator.generate_link_to_ui_from_context(context=context, base_url="http://airflow"))
        return f"{url.path}?{url.query} (set [api] base_url for a full link)"


# -- overdue: Airflow's Deadline Alert ----------------------------------------------------------------


def overdue_alert(spec: DeploymentSpec, *, aws_conn_id: str | None, region_name: str | None) -> DeadlineAlert | None:
    """The DAG's Deadline Alert: ``overdue_after_seconds`` after a run was queued; None when not asked for."""
    settings = spec.notifications
    if settings is None or "overdue" not in settings.events:
        return None
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=settings.overdue_after_seconds),
        callback=AsyncCallback(
            deployment_overdue,
            kwargs={"spec": spec.to_dict(), "aws_conn_id": aws_conn_id, "region_name": region_name},
        ),
        name=f"{spec.service} deployment overdue",
    )


async def deployment_overdue(
    *,
    spec: Mapping[str, Any],
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> list[str]:
    """The Deadline Alert's callback (on the triggerer): say "overdue" if the run still deploys.

    The run itself lasts until the old slot's retention ends (24 h by default), so the deadline
    passes on every run; only a deployment that has neither promoted nor rolled back by then is
    overdue. The state record says which; the AWS calls run in a thread, off the triggerer's loop.
    """
    return await asyncio.to_thread(overdue_now, spec, context or {}, aws_conn_id=aws_conn_id, region_name=region_name)


def overdue_now(
    raw_spec: Mapping[str, Any], context: Mapping[str, Any], *, aws_conn_id: str | None, region_name: str | None
) -> list[str]:
    """Read the run's deployment from its state record and send "overdue" while it is still in progress."""
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.state import ACTIVE, ServiceState, owner_of

    try:
        spec = DeploymentSpec.from_dict(raw_spec)
        settings = spec.notifications
        if settings is None:
            return []
        dag_run = context.get("dag_run") or {}
        run = owner_of(dag_run["dag_id"], dag_run.get("dag_run_id") or dag_run["run_id"])
        route53 = Route53Hook(aws_conn_id=aws_conn_id, region_name=region_name)
        snap = ServiceState(route53, route53.resolve_zone_id(spec.hosted_zone), spec).read()
        state = snap.state
        if state is None or state.owner != run or state.phase not in ACTIVE:
            where = "no deployment state" if state is None else f"{state.phase} by {state.owner}"
            log.info("Deadline passed for %s, but its deployment is not in progress (%s): not overdue", run, where)
            return []
        about = About(
            spec.service, run, state.live, state.candidate, {s.set_identifier: s.name for s in spec.slots.values()}
        )
        notice = compose(
            "overdue",
            about,
            after_seconds=settings.overdue_after_seconds,
            queued_at=dag_run.get("queued_at"),
            phase=str(state.phase),
            split=snap.split,
            triggered_by=dag_run.get("triggering_user_name"),
        )
    except Exception:
        log.warning("The overdue check could not read the deployment; no notification sent", exc_info=True)
        return []
    return send(settings, notice)

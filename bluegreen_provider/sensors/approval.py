"""The approval gate before full promotion, and the hold that ends a run whose promotion was refused.

Story AC 8 asks for a person to approve the step to 100 %. The gate parks in Airflow's
``awaiting_input`` state (no worker, no triggerer) with the evidence a reviewer needs, read back
from AWS. Its XCom is the one record of what was decided: the promotion step acts on it, and a
missing record means the gate was marked success by hand rather than answered.

A refusal must neither promote nor roll back: traffic stays split and the run ends failed at a task
named ``hold`` that says why and what to do next (users of other tools ask for "pause, don't abort").

With ``approval_mode="auto"`` a low-risk release skips the wait: the gate still runs, and when the
soaks' evidence meets :mod:`bluegreen_provider.approval_rule` it approves at once, recording the rule
as the decider; marginal evidence goes to a person with the reasons it did not qualify.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseNotifier, SkipMixin, TriggerRule
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bluegreen_provider import approval_rule
from bluegreen_provider.notifications import notify
from bluegreen_provider.operators.base import PLAN_TASK_ID, StageMixin, StageOperator
from bluegreen_provider.plan import Plan, PlanError
from bluegreen_provider.state import Phase, TransitionRefused, hold

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.execution_time.hitl import HITLUser

APPROVE = "Approve"
REJECT = "Reject"
TIMEOUT_POLICIES = ("hold", "rollback")
APPROVAL_TASK_ID = "approval"
ROLLBACK_DAG_ID = "bluegreen_rollback"
# Tasks with these rules react to failures; the scheduler decides them, a refusal must not skip them.
_FAILURE_RULES = {TriggerRule.ONE_FAILED, TriggerRule.ALL_FAILED}


def duration(seconds: float) -> str:
    """A wait as people say it: ``24h``, ``1h 30m``, ``45s``."""
    seconds = round(seconds)
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m")]
    text = " ".join(f"{n}{unit}" for n, unit in parts if n)
    return (f"{text} {seconds % 60}s" if seconds % 60 else text).strip() or "0s"


def rollback_hint(service: str) -> str:
    return f"trigger the {ROLLBACK_DAG_ID} DAG or run `bluegreen rollback --service {service}`"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "an unknown time"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _user_name(user: HITLUser | Mapping[str, Any] | None) -> str | None:
    if not user:
        return None
    return user.get("name") or user.get("id")


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        value = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value}{unit}"


def _alarm_names(alarms: Any) -> str:
    names = [a.get("name", str(a)) if isinstance(a, Mapping) else str(a) for a in alarms or ()]
    return ", ".join(f"`{n}`" for n in names) or "none"


def _comparison_text(comparison: Mapping[str, Any]) -> str:
    """``**pass**, p = 0.41 (margin 1.5x, alpha 0.05): reason`` from a soak's comparison with live."""
    p_value = comparison.get("p_value")
    text = f"**{_fmt(comparison.get('result'))}**, p = "
    text += f"{p_value:.3g}" if isinstance(p_value, int | float) else "—"
    settings = []
    if comparison.get("margin") is not None:
        settings.append(f"margin {_fmt(comparison['margin'])}x")
    if comparison.get("alpha") is not None:
        settings.append(f"alpha {_fmt(comparison['alpha'])}")
    if settings:
        text += f" ({', '.join(settings)})"
    if comparison.get("reason"):
        text += f": {comparison['reason']}"
    return text


def _soak_evidence(task_id: str, summary: Any, candidate: str, live: str) -> list[str]:
    """One soak's evidence in markdown: candidate and live side by side, then the comparison.

    Summaries written before live was measured have no ``live``/``comparison``; those show as ``—``.
    """
    if not isinstance(summary, Mapping):
        return [f"#### `{task_id}`: no summary recorded"]
    heading = f"#### `{task_id}`: {_fmt(summary.get('outcome'))}"
    if summary.get("duration_s") is not None:
        heading += f", soaked {duration(summary['duration_s'])}"
    if summary.get("judged_until"):
        heading += f", last datapoint judged {_when(summary['judged_until'])}"
    figures = {role: approval_rule.slot_figures(summary, role) or {} for role in ("candidate", "live")}
    cand_slot = figures["candidate"].get("slot") or candidate
    live_slot = figures["live"].get("slot") or live
    rows = [
        f"| {label} | {_fmt(figures['candidate'].get(key), unit)} | {_fmt(figures['live'].get(key), unit)} |"
        for label, key, unit in (
            ("Requests", "requests", ""),
            ("Errors", "errors", ""),
            ("Error rate", "rate_pct", " %"),
        )
    ]
    comparison = summary.get("comparison")
    verdict = _comparison_text(comparison) if isinstance(comparison, Mapping) else "not recorded"
    return [
        heading,
        "",
        f"| | {cand_slot} (candidate) | {live_slot} (live) |",
        "|---|---|---|",
        *rows,
        "",
        f"Comparison with live: {verdict}. Candidate's max window rate "
        f"{_fmt(summary.get('max_rate_pct'), ' %')}; alarms seen: {_alarm_names(summary.get('alarms_seen'))}.",
    ]


class ApprovalSensor(StageMixin, HITLOperator, SkipMixin):
    """
    Ask a person to promote the candidate to 100 %, showing the evidence read back from AWS.

    Approve lets the promotion tasks run. Reject skips only the promotion tasks and what depends on
    them (not the ``hold`` task, not failure handlers such as the rollback), so traffic stays where
    it is. With no answer in time, policy ``hold`` acts as a reject and policy ``rollback`` fails this
    task so the rollback path runs.

    With the spec's ``approval_mode`` ``"auto"`` the gate approves at once, asking no one, when every
    evidence soak's summary exists with outcome ``clean``, the candidate and live each saw at least
    ``min_requests`` requests, the comparison with live did not ``fail``, and the candidate's error
    rate is at most ``comparison_margin`` x live's (0 vs 0 qualifies); see
    :mod:`bluegreen_provider.approval_rule`. Otherwise it asks exactly as in ``"required"`` mode, and
    the request says why it was not auto-approved.

    The return value (XCom) is ``{"decision": "approve"|"reject", "by", "user", "at", "via"}`` with
    ``via`` ``"response"``, ``"timeout"`` or ``"rule"`` (``by`` then states the rule); no return value
    means the task was marked success by hand.

    :param evidence_task_ids: soak tasks whose XCom summaries are shown to the reviewer.
    :param promote_task_ids: the tasks a refusal skips (with everything downstream of them).
    :param response_timeout: how long to wait for an answer; None takes the spec's
        ``approval_timeout_seconds`` (0 there means no deadline).
    :param timeout_policy: ``"hold"`` or ``"rollback"`` when nobody answers; None takes the spec's
        ``approval_timeout_policy``.
    :param assigned_users: who may answer (``{"id", "name"}`` dicts); None lets anyone with access.
    :param notifiers: notifiers called when the request is created (e.g. a chat message with the link).
    :param aws_conn_id: Airflow connection for AWS.
    :param region_name: AWS region for Lambda and CloudWatch.
    :param plan_task_id: the task whose XCom holds this run's plan.
    """

    template_fields: Sequence[str] = (*HITLOperator.template_fields, "aws_conn_id", "region_name")
    inherits_from_skipmixin = True
    # DAG-level params reach every task; HITLOperator itself keeps only task-level ones for the form.
    _FIXED_ARGS = ("options", "multiple", "defaults", "subject", "body")

    def __init__(
        self,
        *,
        evidence_task_ids: Sequence[str] = ("soak_10", "soak_50"),
        promote_task_ids: Sequence[str] = ("shift_100",),
        response_timeout: timedelta | None = None,
        timeout_policy: str | None = None,
        assigned_users: HITLUser | list[HITLUser] | None = None,
        notifiers: Sequence[BaseNotifier] | BaseNotifier | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        plan_task_id: str = PLAN_TASK_ID,
        region_plan_task_ids: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        fixed = [arg for arg in self._FIXED_ARGS if arg in kwargs]
        if fixed:
            raise ValueError(f"ApprovalSensor builds {fixed} itself from the plan; do not pass them")
        for name, ids in (("evidence_task_ids", evidence_task_ids), ("promote_task_ids", promote_task_ids)):
            if isinstance(ids, str) or not all(isinstance(t, str) and t for t in ids):
                raise ValueError(f"{name} must be a list of task ids, got {ids!r}")
        if not promote_task_ids:
            raise ValueError("promote_task_ids must name at least one task (the step to 100 %)")
        if timeout_policy is not None and timeout_policy not in TIMEOUT_POLICIES:
            raise ValueError(f"timeout_policy must be one of {TIMEOUT_POLICIES} or None, got {timeout_policy!r}")
        if response_timeout is not None and (
            not isinstance(response_timeout, timedelta) or response_timeout <= timedelta(0)
        ):
            raise ValueError(f"response_timeout must be a positive timedelta or None, got {response_timeout!r}")
        super().__init__(
            subject="Promote the candidate to 100 %?",
            options=[APPROVE, REJECT],
            multiple=False,
            response_timeout=response_timeout,
            assigned_users=assigned_users,
            notifiers=notifiers,
            **kwargs,
        )
        self.evidence_task_ids = list(evidence_task_ids)
        self.promote_task_ids = list(promote_task_ids)
        # After super(): HITLOperator moves a deprecated ``execution_timeout`` into ``response_timeout``.
        self.timeout_override = self.response_timeout
        self.timeout_policy = timeout_policy
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.plan_task_id = plan_task_id
        self.region_plan_task_ids = dict(region_plan_task_ids) if region_plan_task_ids else None

    # -- settings resolved from the plan ---------------------------------------------------------
    def _timeout(self, plan: Plan) -> timedelta | None:
        if self.timeout_override is not None:
            return self.timeout_override
        seconds = plan.spec.approval_timeout_seconds
        return timedelta(seconds=seconds) if seconds else None

    def _policy(self, plan: Plan) -> str:
        return self.timeout_policy or plan.spec.approval_timeout_policy

    def _check_wiring(self) -> None:
        """Refuse to ask when a refusal could not be honoured (a misnamed or unrelated task)."""
        downstream = self.get_flat_relative_ids(upstream=False)
        problems = [
            f"promote task {t!r} is not downstream of {self.task_id!r}"
            for t in self.promote_task_ids
            if t not in downstream
        ]
        problems += [
            f"evidence task {t!r} is not in DAG {self.dag_id!r}"
            for t in self.evidence_task_ids
            if t not in self.dag.task_dict
        ]
        if problems:
            raise AirflowFailException("approval cannot be asked: " + "; ".join(problems))

    # -- the request -------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        plan = self.load_plan(context)
        stopped = self.stopped_by_hand(context, plan)
        if stopped is not None:
            raise AirflowFailException(f"not asking to promote {plan.spec.service} {plan.candidate}: {stopped}")
        self._check_wiring()
        spec = plan.spec
        split = self.read_split(plan)
        versions = {
            f.name: {
                slot: (target.version if target else None)
                for slot, alias in ((plan.live, plan.live_alias), (plan.candidate, plan.candidate_alias))
                for target in [self.lambdas.get_alias(f.name, alias)]
            }
            for f in spec.functions
        }
        soaks = {t: context["ti"].xcom_pull(task_ids=t) for t in self.evidence_task_ids}
        firing = [a.name for a in self.cloudwatch.alarms_in_alarm(list(spec.alarms))] if spec.alarms else []
        regions = self._regions(context) if self.region_plan_task_ids else None
        if regions:
            firing = sorted({name for region in regions.values() for name in region["alarms_firing"]})
        timeout, policy = self._timeout(plan), self._policy(plan)
        asked_at = datetime.now(UTC)
        refused = (
            approval_rule.refusals(soaks, min_requests=spec.min_requests, margin=spec.comparison_margin)
            if spec.approval_mode == "auto"
            else None
        )
        auto_approved = refused is not None and not refused
        deadline = asked_at + timeout if timeout and not auto_approved else None
        context["ti"].xcom_push(
            key="request",
            value={
                "asked_at": asked_at.isoformat(),
                "deadline": deadline.isoformat() if deadline else None,
                "timeout_policy": policy,
                "split": split,
                "versions": versions,
                "alarms_firing": firing,
                "approval_mode": spec.approval_mode,
                "not_auto_approved": refused,
                **({"regions": regions} if regions else {}),
            },
        )
        if auto_approved:
            record = approval_rule.rule_record(spec.min_requests, asked_at)
            self.log.info(
                "Approval mode 'auto': %s. Promoting %s %s (traffic now %s) without asking.",
                record["by"],
                spec.service,
                plan.candidate,
                plan.describe_split(split),
            )
            return record
        if refused:
            self.log.info("Approval mode 'auto', but not auto-approved: %s; asking a person", "; ".join(refused))

        self.subject = f"Promote {spec.service} {plan.candidate} to 100 %?"
        self.body = self._body(plan, split, versions, soaks, firing, deadline, policy, refused, regions)
        self.response_timeout = timeout
        self.log.info(
            "Asking to promote %s %s to 100 %% (traffic now %s); answer by %s, then policy %r",
            spec.service,
            plan.candidate,
            plan.describe_split(split),
            _when(deadline) if deadline else "no deadline",
            policy,
        )
        return super().execute(context)

    def _body(
        self,
        plan: Plan,
        split: Mapping[str, int],
        versions: Mapping[str, Mapping[str, str | None]],
        soaks: Mapping[str, Any],
        firing: Sequence[str],
        deadline: datetime | None,
        policy: str,
        not_auto_approved: Sequence[str] | None = None,
        regions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> str:
        spec, live, cand = plan.spec, plan.live, plan.candidate
        lines = [
            f"**{spec.service}**: move `{spec.record_name}` ({spec.record_type}) fully to **{cand}**.",
            "",
        ]
        if not_auto_approved:
            lines += [
                f"Approval mode `auto`, but not auto-approved: {'; '.join(not_auto_approved)}. A person decides.",
                "",
            ]
        if regions:
            lines += [
                f"### Regions ({spec.region_rollout})",
                "| Region | Record | Traffic now | Candidate versions | Alarms firing now |",
                "|---|---|---|---|---|",
                *(
                    f"| {name} | `{r['record']}` | {r['describe']} | "
                    f"{', '.join(f'`{fn}` {_fmt(v)}' for fn, v in r['candidate_versions'].items())} | "
                    f"{_alarm_names(r['alarms_firing'])} |"
                    for name, r in regions.items()
                ),
                "",
            ]
        lines += [
            "### Traffic now (read from Route53)",
            f"{plan.describe_split(split)}: {cand} has {_fmt(plan.candidate_pct(split), ' %')} of requests.",
            "",
            "### Versions (read from the Lambda aliases)",
            f"| Function | {live} `{plan.live_alias}` (live) | {cand} `{plan.candidate_alias}` (candidate) |",
            "|---|---|---|",
            *(f"| `{fn}` | {_fmt(v[live])} | {_fmt(v[cand])} |" for fn, v in versions.items()),
            "",
            f"### Soak results (limit: error rate ≤ {_fmt(spec.error_rate_threshold_pct, ' %')}; candidate "
            f"compared with live, margin {_fmt(float(spec.comparison_margin))}x)",
        ]
        for task_id, summary in soaks.items():
            lines += ["", *_soak_evidence(task_id, summary, cand, live)]
        answer_by = f"by {_when(deadline)}" if deadline else "(no deadline)"
        on_timeout = (
            "traffic stays split and the run stops at task `hold`" if policy == "hold" else "the deployment rolls back"
        )
        lines += [
            "",
            "### Alarms",
            f"- Firing when the deployment was planned: {_alarm_names(plan.alarms_firing)}",
            f"- Firing now: {_alarm_names(firing) if spec.alarms else 'no alarms configured'}",
            "",
            "### What each answer does",
            f"- **Approve**: {cand} takes 100 %; {live} is kept for "
            f"{duration(spec.retention_seconds)} for an emergency rollback.",
            f"- **Reject**: traffic stays at {plan.describe_split(split)}; the run stops at task `hold`.",
            f"- **No answer** {answer_by}: {on_timeout} (policy `{policy}`).",
            f"- Roll back at any time: {rollback_hint(spec.service)}.",
        ]
        return "\n".join(lines)

    def _regions(self, context: Context) -> dict[str, dict[str, Any]]:
        """Each region's split, candidate versions and firing alarms, read in that region now."""
        from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook
        from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
        from bluegreen_provider.hooks.route53 import Route53Hook
        from bluegreen_provider.routers import make_router

        found: dict[str, dict[str, Any]] = {}
        for region, task_id in (self.region_plan_task_ids or {}).items():
            try:
                plan = Plan.from_dict(context["ti"].xcom_pull(task_ids=task_id))
            except PlanError as err:
                raise AirflowFailException(f"approval cannot be asked: region {region}: {err}") from err
            route53 = Route53Hook(aws_conn_id=self.aws_conn_id, region_name=region)
            lambdas = LambdaAliasHook(aws_conn_id=self.aws_conn_id, region_name=region)
            split = make_router(plan.spec, route53, plan.zone_id, lambdas=lambdas).read_split()
            versions = {}
            for f in plan.spec.functions:
                target = lambdas.get_alias(f.name, plan.candidate_alias)
                versions[f.name] = target.version if target else None
            alarms = list(plan.spec.alarms)
            watcher = CloudWatchMetricsHook(aws_conn_id=self.aws_conn_id, region_name=region)
            found[region] = {
                "record": plan.spec.record_name,
                "live": plan.live,
                "candidate": plan.candidate,
                "split": split,
                "describe": plan.describe_split(split),
                "candidate_versions": versions,
                "alarms_firing": [a.name for a in watcher.alarms_in_alarm(alarms)] if alarms else [],
            }
        return found

    # -- the answer --------------------------------------------------------------------------------
    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        plan = self.load_plan(context)
        if event.get("error_type") == "timeout":
            return self._timed_out(context, plan)
        result = super().execute_complete(context=context, event=event)
        user = result.get("responded_by_user")
        at = result["responded_at"]
        decision = "approve" if result["chosen_options"][0] == APPROVE else "reject"
        record = {
            "decision": decision,
            "by": _user_name(user),
            "user": dict(user) if user else None,
            "at": at.isoformat() if isinstance(at, datetime) else str(at),
            "via": "response",
        }
        verb = "Approved" if decision == "approve" else "Rejected"
        self.log.info("%s by %s at %s", verb, record["by"] or "an unknown user", _when(at))
        if decision == "reject":
            self._refuse(context, record)
        return record

    def _timed_out(self, context: Context, plan: Plan) -> dict[str, Any]:
        timeout, policy = self._timeout(plan), self._policy(plan)
        waited = duration(timeout.total_seconds()) if timeout else "its deadline"
        record = {
            "decision": "reject" if policy == "hold" else "rollback",
            "by": None,
            "user": None,
            "at": datetime.now(UTC).isoformat(),
            "via": "timeout",
            "timeout_seconds": timeout.total_seconds() if timeout else None,
            "policy": policy,
        }
        if policy == "rollback":
            context["ti"].xcom_push(key="return_value", value=record)
            raise AirflowFailException(
                f"approval timed out after {waited} with no answer (policy 'rollback'); rolling back "
                f"{plan.spec.service} to {plan.live}"
            )
        self.log.info("No answer after %s; policy 'hold': promotion skipped, traffic stays split", waited)
        self._refuse(context, record)
        return record

    def _refuse(self, context: Context, record: dict[str, Any]) -> None:
        """Record the refusal, then skip the promotion tasks and what depends on them.

        ``skip`` ends ``execute_complete`` by raising, so a return value would never be stored:
        the record is pushed first (the stock ApprovalOperator loses it this way).
        """
        context["ti"].xcom_push(key="return_value", value=record)
        dag = self.dag
        to_skip = {}
        for task_id in self.promote_task_ids:
            task = dag.get_task(task_id)
            to_skip[task_id] = task
            to_skip.update((t.task_id, t) for t in task.get_flat_relatives(upstream=False))
        for task in list(to_skip.values()):
            if task.trigger_rule in _FAILURE_RULES:
                for dropped in (task.task_id, *task.get_flat_relative_ids(upstream=False)):
                    to_skip.pop(dropped, None)
        tasks = [t for t in to_skip.values() if not t.is_teardown and not isinstance(t, HoldOperator)]
        self.log.info("Skipping %s", sorted(t.task_id for t in tasks))
        self.skip(ti=context["ti"], tasks=tasks)


class HoldOperator(StageOperator):
    """
    End a run whose promotion was refused, failed, with the reason, while traffic stays split.

    Reads the approval's XCom: a reject (or a timeout under policy ``hold``) fails this task with
    the split read back from Route53 and the ways forward; an approval, a gate marked success by
    hand, or a failed gate (the rollback handles that) skips it. Keep it downstream of the
    approval and NOT upstream of the rollback, so a hold never rolls back.

    :param approval_task_id: the approval task whose XCom and state are read.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields, "approval_task_id")

    def __init__(
        self,
        *,
        approval_task_id: str = APPROVAL_TASK_ID,
        trigger_rule: str = TriggerRule.ALL_DONE,
        **kwargs: Any,
    ) -> None:
        if not approval_task_id:
            raise ValueError("approval_task_id is required")
        super().__init__(trigger_rule=trigger_rule, **kwargs)
        self.approval_task_id = approval_task_id

    def execute(self, context: Context) -> None:
        ti, run = context["ti"], context["dag_run"]
        states = ti.get_task_states(dag_id=run.dag_id, task_ids=[self.approval_task_id], run_ids=[run.run_id])
        state = states.get(run.run_id, {}).get(self.approval_task_id)
        record = ti.xcom_pull(task_ids=self.approval_task_id)
        if state != "success":
            self._held_by_a_soak(context)
            raise AirflowSkipException(
                f"approval {self.approval_task_id!r} ended {state}; nothing to hold (a failed gate rolls back)"
            )
        if not isinstance(record, Mapping):
            self.log.warning(
                "Approval %r was marked success by hand without an answer; the promotion proceeds. "
                "Who marked it is in Airflow's audit log.",
                self.approval_task_id,
            )
            raise AirflowSkipException("approval marked success without an answer; nothing to hold")
        if record.get("decision") == "approve":
            decider = (
                record.get("by") if record.get("via") == approval_rule.RULE_VIA else f"approved by {record.get('by')}"
            )
            raise AirflowSkipException(f"{decider} at {_when(record.get('at'))}")
        if record.get("decision") != "reject":
            raise AirflowFailException(f"approval {self.approval_task_id!r} left an unknown record {record!r}")
        raise AirflowFailException(self._held_message(context, record))

    def _held_by_a_soak(self, context: Context) -> None:
        """A soak that found live as bad as the candidate held the run: end it failed here, keeping the split."""
        try:
            plan = self.load_plan(context)
        except AirflowFailException:
            return
        deployment = self.service_state(plan).state()
        if deployment is None or deployment.owner != self.run_owner(context) or deployment.phase != Phase.HELD:
            return
        notify(context, plan, "held", split=deployment.split, why=deployment.reason, by_soak=True)
        raise AirflowFailException(
            f"HELD at {plan.describe_split(deployment.split)}: {deployment.reason}. Traffic stays split. When live "
            f"recovers, clear the soak to watch again; to roll back: {rollback_hint(plan.spec.service)}."
        )

    def _held_message(self, context: Context, record: Mapping[str, Any]) -> str:
        plan = self.load_plan(context)
        service = plan.spec.service
        if record.get("via") == "timeout":
            seconds = record.get("timeout_seconds")
            why = f"approval timed out after {duration(seconds)}" if seconds else "approval timed out"
        else:
            why = f"rejected by {record.get('by') or 'an unknown user'} at {_when(record.get('at'))}"
        split = None
        try:
            split = self.read_split(plan)
            where = plan.describe_split(split)
            state = hold(self.service_state(plan), self.run_owner(context), f"held: {why}")
            owner = f" {service} is {state.phase} by {state.owner} (generation {state.generation})."
        except TransitionRefused as err:
            owner = f" Not recorded as held: {err}."
        except Exception as err:  # the reason must reach the on-call engineer even if AWS does not answer
            where, owner = f"an unknown split (Route53 could not be read: {err})", ""
        notify(context, plan, "held", split=split, why=why)
        return (
            f"HELD at {where}: {why}. Traffic stays split. To promote: clear '{self.approval_task_id}' "
            f"with its downstream tasks and approve; to roll back: {rollback_hint(service)}.{owner}"
        )

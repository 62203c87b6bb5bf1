"""One deployment run, stage by stage, from Airflow's metadata DB: what each stage did, in a sentence.

The stages' return values (XCom) are their own record of what happened: the plan names the live
slot and the threshold, a shift says when its change was submitted and INSYNC, a soak its counts
and samples, the approval who decided. A stage that failed a verdict keeps it under the ``verdict``
key. Nothing here talks to AWS: the page shows what the run recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bluegreen_provider.ui import text

FINISHED_RUN_STATES = frozenset({"success", "failed"})
# Airflow stamps start and end on tasks it skips without running them: no duration to show.
NEVER_RAN_STATES = frozenset({"skipped", "upstream_failed", "removed"})

_STEP = re.compile(r"^(shift|soak)_(\d+)$")
_STORY_RANK = {"plan": 0.0, "deploy_green": 1.0, "run_migrations": 2.0, "health_check": 3.0, "approval": 209.0}
_AFTER_RANK = {"shift_100": 300.0, "teardown_blue": 400.0, "hold": 500.0, "rollback": 600.0}
_RULES = {"error_rate": "error rate", "relative": "worse than live", "alarm": "alarm", "health_check": "health check"}
_DECIDED = {"approve": "approved", "reject": "rejected", "rollback": "rolled back"}
_WAITING = {
    "running": "running",
    "deferred": "waiting in the triggerer",
    "awaiting_input": "waiting for a person's answer",
    "queued": "queued",
    "scheduled": "scheduled",
    "up_for_retry": "failed, to be retried",
    "up_for_reschedule": "waiting to be rescheduled",
    "restarting": "restarting",
}


def story_rank(task_id: str) -> float:
    """Where a stage sits in the deployment story: the order of stages that have not started yet."""
    if task_id in _STORY_RANK:
        return _STORY_RANK[task_id]
    if task_id in _AFTER_RANK:
        return _AFTER_RANK[task_id]
    step = _STEP.match(task_id)
    if step:
        return 10.0 + 2 * int(step.group(2)) + (1 if step.group(1) == "soak" else 0)
    return 1000.0


def chronological(stages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Stages in the order they started; those not started yet after them, in story order."""
    never = datetime.max.replace(tzinfo=UTC)

    def key(stage: Mapping[str, Any]) -> tuple:
        started = text.moment(stage.get("start_date")) if stage.get("ran", True) else None
        return (started or never, story_rank(stage["task_id"]), stage["task_id"], stage.get("map_index", -1))

    return sorted(stages, key=key)


# -- what the run recorded, for the sentences -------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """What the plan and the shifts recorded, which every stage's sentence and chart may need."""

    live: str | None = None
    candidate: str | None = None
    slot_of_set: dict[str, str] = field(default_factory=dict)
    threshold_pct: float | None = None
    start_share: float | None = None
    # (time the candidate's share changed, the share then): INSYNC of each shift, then the rollback.
    share_changes: tuple[tuple[datetime, float], ...] = ()

    @classmethod
    def from_stages(cls, stages: Sequence[Mapping[str, Any]]) -> RunFacts:
        by_task = {s["task_id"]: s for s in stages}
        plan = (by_task.get("plan") or {}).get("summary")
        plan = plan if isinstance(plan, Mapping) else {}
        spec = plan.get("spec") if isinstance(plan.get("spec"), Mapping) else {}
        slots = spec.get("slots") if isinstance(spec.get("slots"), Mapping) else {}
        slot_of_set = {
            str(s.get("set_identifier")): str(name)
            for name, s in slots.items()
            if isinstance(s, Mapping) and s.get("set_identifier")
        }
        candidate = plan.get("candidate")
        candidate_set = next((k for k, v in slot_of_set.items() if v == candidate), candidate)
        threshold = spec.get("error_rate_threshold_pct")
        changes: list[tuple[datetime, float]] = []
        for stage in stages:
            summary = stage.get("summary")
            if not isinstance(summary, Mapping) or not isinstance(summary.get("split"), Mapping):
                if stage["task_id"] == "rollback" and isinstance(summary, Mapping):
                    after = summary.get("split_now") or summary.get("split_after")
                    at = text.moment(stage.get("end_date"))
                    share = text.share(after, candidate_set) if candidate_set else None
                    if at and share is not None:
                        changes.append((at, share))
                continue
            at = text.moment(summary.get("insync_at")) or text.moment(summary.get("submitted_at"))
            share = text.share(summary["split"], candidate_set) if candidate_set else None
            if at and share is not None:
                changes.append((at, share))
        return cls(
            live=plan.get("live"),
            candidate=candidate,
            slot_of_set=slot_of_set,
            threshold_pct=threshold if isinstance(threshold, int | float) else None,
            start_share=text.share(plan.get("split_before"), candidate_set) if candidate_set else None,
            share_changes=tuple(sorted(changes)),
        )

    def split(self, weights: Mapping[str, Any] | None) -> str:
        return text.split(weights, self.slot_of_set)


@dataclass(frozen=True)
class Sentence:
    """What a stage did: when, in words, and any further lines (warnings, dry-run changes)."""

    at: datetime | None
    text: str
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{text.clock(self.at)} {self.text}" if self.at else self.text


def _plain(value: Any) -> str:
    if isinstance(value, str | int | float | bool) or value is None:
        return str(value)
    return json.dumps(value, default=str, sort_keys=True)


def _generic(summary: Mapping[str, Any]) -> str:
    """A summary no sentence knows yet: every field, in full."""
    return "; ".join(f"{key.replace('_', ' ')}: {_plain(value)}" for key, value in summary.items())


def _approval(record: Mapping[str, Any]) -> str:
    decision = str(record.get("decision") or "")
    by = record.get("by")
    if record.get("via") == "rule" and by:
        return str(by)  # the rule states itself: "auto-approved by rule: …"
    if not decision:
        return str(record.get("via") or _generic(record))
    done = _DECIDED.get(decision, decision)
    if record.get("via") == "timeout":
        return f"{done}: no answer in time (approval timed out)"
    return f"{done} by {by or 'no one recorded'}" + (f" via {record['via']}" if record.get("via") else "")


def _plan(summary: Mapping[str, Any], facts: RunFacts) -> tuple[str, tuple[str, ...]]:
    live, candidate = summary.get("live", "?"), summary.get("candidate", "?")
    sentence = (
        f"planned: {live} is live, {candidate} takes the release; traffic {facts.split(summary.get('split_before'))}"
    )
    if summary.get("resumed"):
        sentence += "; this run resumes its own deployment"
    notes = [f"warning: {w}" for w in summary.get("warnings") or ()]
    changes = summary.get("changes")
    if isinstance(changes, list):
        sentence += f"; dry run: {len(changes)} changes listed, none made"
        notes += [f"would {c.get('stage')}: {c.get('change')}" for c in changes if isinstance(c, Mapping)]
    return sentence, tuple(notes)


def _deploy(summary: Mapping[str, Any]) -> str:
    versions = summary.get("versions") if isinstance(summary.get("versions"), Mapping) else {}
    released = ", ".join(
        f"{fn} v{v.get('version')} ({'reused' if v.get('reused') else 'new'})"
        for fn, v in sorted(versions.items())
        if isinstance(v, Mapping)
    )
    return f"released into {summary.get('slot', '?')} ({summary.get('alias', '?')}): {released or 'no function'}"


def _migrations(summary: Mapping[str, Any]) -> str:
    if summary.get("mode") == "command":
        took = text.duration((summary.get("duration_ms") or 0) / 1000)
        return f"migration command exited {summary.get('exit_code')} after {took}"
    applied = [m.get("version") if isinstance(m, Mapping) else m for m in summary.get("applied") or ()]
    sentence = f"migrations: {len(applied)} applied" + (f" ({', '.join(map(str, applied))})" if applied else "")
    if summary.get("skipped"):
        sentence += f", {len(summary['skipped'])} already applied"
    if summary.get("pending"):
        sentence += f", {len(summary['pending'])} pending"
    return sentence


def _health(summary: Mapping[str, Any]) -> str:
    probe = summary.get("probe") if isinstance(summary.get("probe"), Mapping) else {}
    if probe.get("skipped"):
        sentence = f"health probe skipped: {probe['skipped']}"
    elif probe:
        sentence = (
            f"health probe of {probe.get('url')}: {probe.get('successes')} consecutive answers "
            f"(last HTTP {probe.get('last_status')}) in {probe.get('attempts')} tries, "
            f"{text.duration(probe.get('duration_s'))}"
        )
    else:
        sentence = "health checked"
    if summary.get("route53_health_check_id"):
        sentence += f"; Route53 health check {summary['route53_health_check_id']} {summary.get('route53_status')}"
    return sentence


def _shift(summary: Mapping[str, Any], facts: RunFacts) -> tuple[datetime | None, str]:
    pct = summary.get("candidate_pct")
    submitted, insync = text.moment(summary.get("submitted_at")), text.moment(summary.get("insync_at"))
    weights = facts.split(summary.get("split"))
    if pct == 100:
        sentence = f"promoted {facts.candidate or 'the candidate'} to 100 % ({weights})"
    else:
        sentence = f"shifted to {pct} % ({weights})"
    if submitted is None:
        sentence += ", already in place"
    elif insync is not None:
        sentence += f", INSYNC after {text.duration((insync - submitted).total_seconds())}"
    else:
        sentence += ", not confirmed INSYNC"
    if isinstance(summary.get("approval"), Mapping):
        sentence += f"; {_approval(summary['approval'])}"
    if pct == 100:
        kept = facts.live or "the previous slot"
        until = summary.get("retain_until")
        sentence += (
            f"; {kept} kept until {text.when(until)} UTC for emergency rollback" if until else "; nothing retained"
        )
    return submitted, sentence


def soak_limit(summary: Mapping[str, Any] | None, verdict: Mapping[str, Any] | None, facts: RunFacts) -> float | None:
    """The error-rate threshold the soak was judged against: its own record first, then the run's plan."""
    for source in (summary or {}, (verdict or {}).get("figures") or {}):
        found = source.get("threshold_pct") if isinstance(source, Mapping) else None
        if isinstance(found, int | float) and not isinstance(found, bool):
            return float(found)
    return facts.threshold_pct


def _soak(task_pct: str, summary: Mapping[str, Any], limit: float | None) -> str:
    stage = f"soak {summary.get('stage_pct', task_pct)} %"
    rate = summary.get("rate_pct")
    errors = f"{text.pct(rate)} errors" if rate is not None else "no error rate (no requests)"
    parts = [f"{stage}: {text.count(summary.get('requests'))} requests, {errors}, limit {text.pct(limit)}"]
    live = summary.get("live")
    if isinstance(live, Mapping):
        live_rate = text.pct(live.get("rate_pct")) if live.get("rate_pct") is not None else "no error rate"
        parts.append(
            f"live {live.get('slot')} {live_rate} "
            f"({text.count(live.get('errors'))} of {text.count(live.get('requests'))})"
        )
    if summary.get("max_rate_pct") is not None:
        parts.append(f"peak {text.pct(summary['max_rate_pct'])}")
    comparison = summary.get("comparison")
    if isinstance(comparison, Mapping) and comparison.get("result"):
        p = comparison.get("p_value")
        parts.append(f"against live: {comparison['result']}" + (f" (p = {p:.3g})" if isinstance(p, float) else ""))
    alarms = summary.get("alarms_seen") or []
    parts.append("alarms seen: " + ", ".join(map(str, alarms)) if alarms else "no alarm in ALARM")
    if summary.get("duration_s") is not None:
        parts.append(f"soaked {text.duration(summary['duration_s'])}")
    outcome = summary.get("outcome")
    if outcome == "no_data_passed":
        parts.append("passed without enough data (no_data_policy pass)")
    elif outcome:
        parts.append(str(outcome))
    return "; ".join(parts)


def _verdict(task_id: str, verdict: Mapping[str, Any]) -> str:
    step = _STEP.match(task_id)
    what = f"{step.group(1)} {step.group(2)} %" if step else task_id
    status, rule, message = verdict.get("status"), verdict.get("rule"), verdict.get("message") or ""
    if status == "breach":
        return f"{what} breached ({_RULES.get(str(rule), rule)}): {message}"
    words = {"no_data": "failed", "error": "aborted", "degraded": "held", "stopped": "stopped"}
    return f"{what} {words.get(str(status), status)}: {message}"


def _teardown(summary: Mapping[str, Any]) -> str:
    if summary.get("action") == "retired":
        sentence = f"retired {summary.get('slot')}"
        if summary.get("health_check_deleted"):
            sentence += f"; deleted health check {summary['health_check_deleted']}"
        if summary.get("pruned"):
            sentence += f"; pruned {_plain(summary['pruned'])}"
        return sentence
    return f"nothing to tear down: {summary.get('reason', '')}".rstrip(": ")


def _rollback(summary: Mapping[str, Any], facts: RunFacts) -> tuple[str, tuple[str, ...]]:
    notes = tuple(f"warning: {w}" for w in summary.get("warnings") or ())
    if summary.get("action") == "rolled_back":
        sentence = (
            f"rolled back to {summary.get('live')}: "
            f"{facts.split(summary.get('split_now') or summary.get('split_after'))}"
            f" (was {facts.split(summary.get('split_before'))})"
        )
        if summary.get("reason"):
            sentence += f": {summary['reason']}"
        return sentence, notes
    return f"nothing to roll back: {summary.get('reason', '')}".rstrip(": "), notes


def describe_stage(
    task_id: str,
    *,
    state: str | None,
    summary: Any = None,
    verdict: Mapping[str, Any] | None = None,
    start: str | datetime | None = None,
    facts: RunFacts | None = None,
) -> Sentence:
    """The sentence for one stage, from its return value, its verdict and its state."""
    facts = facts or RunFacts()
    at = text.moment(start)
    notes: tuple[str, ...] = ()
    step = _STEP.match(task_id)
    if isinstance(verdict, Mapping) and verdict.get("status"):
        words = _verdict(task_id, verdict)
    elif not isinstance(summary, Mapping) or not summary:
        if summary not in (None, {}, []):
            words = f"returned {_plain(summary)}"
        else:
            words = _WAITING.get(state or "", state or "not started") if state != "success" else "done"
    elif task_id == "plan" or "live_versions" in summary:
        words, notes = _plan(summary, facts)
    elif task_id == "approval" or "decision" in summary:
        at = text.moment(summary.get("at")) or at
        words = _approval(summary)
    elif "split" in summary and isinstance(summary["split"], Mapping):
        shifted_at, words = _shift(summary, facts)
        at = shifted_at or at
    elif "rate_pct" in summary or (step and step.group(1) == "soak"):
        words = _soak(step.group(2) if step else "?", summary, soak_limit(summary, verdict, facts))
    elif task_id == "deploy_green" or "versions" in summary:
        words = _deploy(summary)
    elif task_id == "run_migrations" or "lock_wait_ms" in summary:
        words = _migrations(summary)
    elif task_id == "health_check" or "probe" in summary:
        words = _health(summary)
    elif task_id == "teardown_blue":
        words = _teardown(summary)
    elif task_id == "rollback" or "split_before" in summary:
        words, notes = _rollback(summary, facts)
    else:
        words = _generic(summary)
    return Sentence(at, words, notes)


# -- reading the run --------------------------------------------------------------------------------


def _state(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def run_timeline(dag_id: str, run_id: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The run and its stages (task instances) in the order they ran, each with its record and sentence.

    None if Airflow knows no such run.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XCOM_RETURN_KEY, XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    now = now or datetime.now(UTC)
    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first()
        if run is None:
            return None
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        records: dict[tuple[str, int, str], Any] = {}
        for row in session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.key.in_([XCOM_RETURN_KEY, "verdict"]),
            )
        ):
            records[(row.task_id, row.map_index, row.key)] = XComModel.deserialize_value(row)
        stages: list[dict[str, Any]] = []
        for ti in tis:
            state = _state(ti.state)
            summary = records.get((ti.task_id, ti.map_index, XCOM_RETURN_KEY))
            verdict = records.get((ti.task_id, ti.map_index, "verdict"))
            # A held soak is skipped after it ran: its verdict says so.
            ran = state not in NEVER_RAN_STATES or summary is not None or verdict is not None
            start, end = ti.start_date, ti.end_date
            duration = ((end or now) - start).total_seconds() if start and ran else None
            stages.append(
                {
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "state": state,
                    "try_number": ti.try_number,
                    "ran": ran,
                    "start_date": _iso(start),
                    "end_date": _iso(end),
                    "duration_s": round(duration, 3) if duration is not None else None,
                    "running": bool(ran and start is not None and end is None),
                    "summary": summary,
                    "verdict": verdict,
                }
            )
        stages = [dict(s) for s in chronological(stages)]
        facts = RunFacts.from_stages(stages)
        for stage in stages:
            said = describe_stage(
                stage["task_id"],
                state=stage["state"],
                summary=stage["summary"],
                verdict=stage["verdict"],
                start=stage["start_date"] if stage["ran"] else None,
                facts=facts,
            )
            stage["sentence"], stage["notes"] = str(said), list(said.notes)
            stage["said_at"], stage["text"] = _iso(said.at), said.text
        run_end = run.end_date
        return {
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "state": _state(run.state),
            "run_type": _state(run.run_type),
            "start_date": _iso(run.start_date),
            "end_date": _iso(run_end),
            "duration_s": round(((run_end or now) - run.start_date).total_seconds(), 3) if run.start_date else None,
            "stages": stages,
        }

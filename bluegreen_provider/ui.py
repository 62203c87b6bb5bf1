"""The on-call view of blue/green deployments, served inside the Airflow UI by ``plugins/bluegreen_plugin.py``.

Two questions come up at 3 a.m.: *where is traffic going right now, and how do I put it back?* and
*what did this deployment run do, stage by stage?* The first is answered from AWS (the same
``service_status`` the ``bluegreen status`` CLI prints), the second from Airflow's metadata DB (task
instances and the stage summaries the tasks return as XCom).

Routes (relative to the mount point, ``/bluegreen``)::

    GET /                              every service: split bar, state, lock, retention, versions, alarms
    GET /api/services                  the same as JSON
    GET /runs/{dag_id}/{run_id}        one deployment run's timeline
    GET /api/runs/{dag_id}/{run_id}    the same as JSON

The api-server imports the plugin, and with it this module, at start-up; Airflow's workers import
plugins too. So only FastAPI is imported here at module level: AWS hooks, DAG files, ORM models and
Airflow's security helpers are imported when a request needs them, and nothing talks to AWS before.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

log = logging.getLogger(__name__)

MOUNT_PATH = "/bluegreen"
REFRESH_SECONDS = 10
SLOT_COLOURS = {"blue": "#1f6feb", "green": "#1a7f37"}
FINISHED_RUN_STATES = frozenset({"success", "failed"})
# Airflow stamps start and end on tasks it skips; those tasks have no duration to show.
NEVER_RAN_STATES = frozenset({"skipped", "upstream_failed", "removed"})

# DAG files are executed to find the services; two page loads at once need not do it twice in parallel.
_load_lock = threading.Lock()


# -- access -----------------------------------------------------------------------------------------


async def _require_dag_read(request: Request) -> None:
    """Allow the request only for a logged-in user who may read DAGs (this run's DAG, if one is named).

    Plugin apps are mounted without Airflow's authentication, so the view applies Airflow's own
    checks: the UI's session cookie or a bearer token, then the auth manager's DAG read permission.
    """
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api import security
    from starlette.concurrency import run_in_threadpool

    credentials = await security.bearer_scheme(request)
    user = await security.get_user(request, _oauth_token=None, bearer_credentials=credentials)
    entity = DagAccessEntity.RUN if "dag_id" in request.path_params else None
    await run_in_threadpool(security.requires_access_dag("GET", entity), request, user)


# -- services (from AWS) ----------------------------------------------------------------------------


def _aws_conn_id() -> str:
    from airflow.configuration import conf

    return conf.get("bluegreen", "aws_conn_id", fallback="aws_default")


def _dags_folder() -> Path:
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder"))


def collect_services(dags_folder: Path, *, aws_conn_id: str) -> list[dict[str, Any]]:
    """The status of every service the DAG files register, one entry each, in name order.

    A failure reading one service (missing record, AWS unreachable, bad credentials) becomes that
    entry's ``error`` so the others still show: the page is most needed when something is broken.
    """
    from bluegreen_provider.cli import load_services
    from bluegreen_provider.status import service_status

    with _load_lock:
        services = load_services(dags_folder)
    entries: list[dict[str, Any]] = []
    for name, spec in sorted(services.items()):
        try:
            entry = service_status(spec, aws_conn_id=aws_conn_id).to_dict()
            entry["error"] = None
        except Exception as err:  # any failure is this service's, never the page's
            log.warning("bluegreen UI: status of %s failed: %s", name, err)
            entry = {"service": name, "record": spec.record_name, "error": f"{type(err).__name__}: {err}"}
        entries.append(entry)
    return entries


def _service_dags(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per service, its rollback DAG and the latest run of its deployment DAG, found by DAG tags.

    The factories tag both DAGs ``bluegreen`` + the service name, and the rollback DAG also
    ``rollback``. This is a convenience for links: if the metadata DB cannot answer, the page
    still shows the CLI rollback command.
    """
    from airflow.models.dag import DagTag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    names = list(names)
    found: dict[str, dict[str, Any]] = {name: {"rollback_dag_id": None, "latest_run": None} for name in names}
    try:
        with create_session() as session:
            tags: dict[str, set[str]] = {}
            rows = session.execute(
                select(DagTag.dag_id, DagTag.name).where(DagTag.name.in_([*names, "bluegreen", "rollback"]))
            )
            for dag_id, tag in rows:
                tags.setdefault(dag_id, set()).add(tag)
            for name in names:
                ours = sorted(d for d, t in tags.items() if {"bluegreen", name} <= t)
                rollback = [d for d in ours if "rollback" in tags[d]]
                deploy = [d for d in ours if "rollback" not in tags[d]]
                found[name]["rollback_dag_id"] = rollback[0] if rollback else None
                if deploy:
                    run = session.execute(
                        select(DagRun.dag_id, DagRun.run_id, DagRun.state)
                        .where(DagRun.dag_id.in_(deploy))
                        .order_by(DagRun.id.desc())
                        .limit(1)
                    ).first()
                    if run is not None:
                        found[name]["latest_run"] = {"dag_id": run[0], "run_id": run[1], "state": _text(run[2])}
    except SQLAlchemyError as err:
        log.warning("bluegreen UI: could not read DAG tags and runs: %s", err)
    return found


# -- one run (from the metadata DB) ----------------------------------------------------------------


_SHIFT_OR_SOAK = re.compile(r"^(shift|soak)_(\d+)$")
_FIXED_RANK = {"plan": 0.0, "deploy_green": 1.0, "run_migrations": 2.0, "health_check": 3.0, "approval": 209.0}
_AFTER_RANK = {"teardown_blue": 400.0, "hold": 500.0, "rollback": 600.0}


def stage_rank(task_id: str) -> float:
    """Where a task sits in the deployment story, so rows read in the order the stages happen."""
    if task_id in _FIXED_RANK:
        return _FIXED_RANK[task_id]
    match = _SHIFT_OR_SOAK.match(task_id)
    if match:
        return 10.0 + 2 * int(match.group(2)) + (1 if match.group(1) == "soak" else 0)
    return _AFTER_RANK.get(task_id, 1000.0)


def _text(value: Any) -> str | None:
    """An enum-or-string state as plain text."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def run_timeline(dag_id: str, run_id: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The run's stages (task instances) with state, times, duration and XCom summary; None if no run."""
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
        summaries: dict[tuple[str, int], Any] = {}
        for row in session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == XCOM_RETURN_KEY
            )
        ):
            summaries[(row.task_id, row.map_index)] = XComModel.deserialize_value(row)
        stages = []
        for ti in sorted(tis, key=lambda t: (stage_rank(t.task_id), t.start_date or now, t.task_id, t.map_index)):
            start, end = ti.start_date, ti.end_date
            ran = _text(ti.state) not in NEVER_RAN_STATES
            running = ran and start is not None and end is None
            duration = ((end or now) - start).total_seconds() if start and ran else None
            stages.append(
                {
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "state": _text(ti.state),
                    "try_number": ti.try_number,
                    "start_date": _iso(start),
                    "end_date": _iso(end),
                    "duration_s": round(duration, 3) if duration is not None else None,
                    "running": running,
                    "summary": summaries.get((ti.task_id, ti.map_index)),
                }
            )
        run_end = run.end_date
        return {
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "state": _text(run.state),
            "run_type": _text(run.run_type),
            "start_date": _iso(run.start_date),
            "end_date": _iso(run_end),
            "duration_s": round(((run_end or now) - run.start_date).total_seconds(), 3) if run.start_date else None,
            "stages": stages,
        }


# -- formatting -------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _u(value: Any) -> str:
    """A DAG or run id as one URL path segment, escaped for an HTML attribute."""
    return html.escape(quote(str(value), safe=""))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} m"
    if minutes:
        return f"{minutes} m {secs:02d} s"
    return f"{secs} s"


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _split_text(split: Mapping[str, Any]) -> str:
    return " / ".join(f"{slot} {split[slot]}" for slot in sorted(split))


def describe_summary(value: Any) -> str:
    """One line of plain text for a stage's XCom return value (shift, soak, approval or other)."""
    if value is None:
        return ""
    if not isinstance(value, Mapping):
        text = json.dumps(value, default=str)
        return text if len(text) <= 160 else text[:157] + "…"
    if "decision" in value:
        who = value.get("by") or "no one recorded"
        if value.get("via") == "rule":  # ``by`` states the rule: "auto-approved by rule: …"
            return f"{value['decision']}: {who} (at {_when(value.get('at'))})"
        return f"{value['decision']} by {who} at {_when(value.get('at'))} via {value.get('via') or '?'}"
    if "split" in value and isinstance(value["split"], Mapping):
        text = f"traffic {_split_text(value['split'])}"
        if isinstance(value.get("previous_split"), Mapping):
            text += f" (was {_split_text(value['previous_split'])})"
        if value.get("retain_until"):
            text += f"; previous slot retained until {_when(str(value['retain_until']))}"
        return text
    if "rate_pct" in value:
        parts = [
            f"{value.get('requests', '?')} requests, {value.get('errors', '?')} errors",
            f"error rate {value['rate_pct']} % (limit {value.get('max_rate_pct', '?')} %)",
        ]
        alarms = value.get("alarms_seen") or []
        parts.append("alarms: " + (", ".join(map(str, alarms)) if alarms else "none"))
        if value.get("duration_s") is not None:
            parts.append(f"soaked {format_duration(value['duration_s'])}")
        if value.get("outcome"):
            parts.append(str(value["outcome"]))
        return "; ".join(parts)
    scalars = [f"{k}={v}" for k, v in value.items() if isinstance(v, str | int | float | bool)]
    text = ", ".join(scalars)
    return text if len(text) <= 160 else text[:157] + "…"


_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 16px; color: #1f2328;
       background: #f6f8fa; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0; }
.muted { color: #59636e; }
.card { background: #fff; border: 1px solid #d1d9e0; border-radius: 8px; padding: 14px 16px; margin: 14px 0; }
.card.error { border-color: #cf222e; }
.head { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; color: #fff; }
.b-blue { background: #1f6feb; } .b-green { background: #1a7f37; } .b-split { background: #9a6700; }
.b-bad { background: #cf222e; } .b-neutral { background: #59636e; }
.bar { display: flex; height: 34px; border-radius: 6px; overflow: hidden; margin: 12px 0; background: #d1d9e0; }
.bar div { color: #fff; font-weight: 700; display: flex; align-items: center; justify-content: center;
           white-space: nowrap; overflow: hidden; min-width: 0; }
table { border-collapse: collapse; }
td, th { padding: 3px 12px 3px 0; text-align: left; vertical-align: top; }
th { color: #59636e; font-weight: 600; }
.facts th { width: 140px; }
.alarm { color: #cf222e; font-weight: 700; }
.rollback { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px;
            margin-top: 10px; }
code { background: #eff2f5; padding: 1px 6px; border-radius: 4px; font-size: 13px; }
.errtext { color: #cf222e; font-weight: 600; white-space: pre-wrap; }
.stages { width: 100%; background: #fff; border: 1px solid #d1d9e0; border-radius: 8px; }
.stages td, .stages th { padding: 6px 10px; border-bottom: 1px solid #eaeef2; }
.nowrap { white-space: nowrap; }
.state { font-weight: 700; }
.s-success { color: #1a7f37; } .s-failed, .s-upstream_failed { color: #cf222e; }
.s-running, .s-deferred, .s-awaiting_input, .s-queued, .s-scheduled { color: #9a6700; }
.s-skipped, .s-none, .s-removed { color: #59636e; }
.track { position: relative; height: 12px; width: 220px; background: #eaeef2; border-radius: 3px; }
.track div { position: absolute; top: 0; height: 12px; border-radius: 3px; background: #0969da; min-width: 2px; }
a { color: #0969da; }
"""


def _page(title: str, body: str, *, refresh: bool) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>{meta}"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>"
    )


def _state_badge(entry: Mapping[str, Any]) -> str:
    if entry.get("error"):
        return '<span class="badge b-bad">STATUS UNAVAILABLE</span>'
    state = str(entry.get("state", ""))
    live = entry.get("live")
    if live in SLOT_COLOURS:
        css = f"b-{live}"
    elif state.startswith("SPLIT"):
        css = "b-split"
    else:
        css = "b-bad"
    return f'<span class="badge {css}">{_e(state)}</span>'


def _split_bar(split: Mapping[str, int]) -> str:
    total = sum(max(0, int(w)) for w in split.values())
    if total <= 0:
        return '<div class="bar"><div style="width:100%;background:#cf222e">no traffic: every weight is 0</div></div>'
    cells = []
    for slot in sorted(split):
        weight = max(0, int(split[slot]))
        pct = 100 * weight / total
        colour = SLOT_COLOURS.get(slot, "#59636e")
        label = f"{slot} {pct:.0f}%" if pct >= 8 else (f"{pct:.0f}%" if pct > 0 else "")
        cells.append(
            f'<div style="width:{pct:.2f}%;background:{colour}" title="{_e(slot)}: weight {weight}">{_e(label)}</div>'
        )
    return f'<div class="bar">{"".join(cells)}</div>'


def _until(iso: str | None) -> str:
    if not iso:
        return "?"
    try:
        until = datetime.fromisoformat(iso)
    except ValueError:
        return _e(iso)
    left = (until - datetime.now(UTC)).total_seconds()
    tail = f"in {format_duration(left)}" if left > 0 else "expired"
    return f"{_e(_when(until.isoformat()))} UTC ({tail})"


def _service_card(entry: Mapping[str, Any], links: Mapping[str, Any], base: str, airflow_root: str) -> str:
    name = str(entry["service"])
    parts = [
        f'<div class="card{" error" if entry.get("error") else ""}" id="svc-{_e(name)}">',
        f'<div class="head"><h2>{_e(name)}</h2><span class="muted">{_e(entry.get("record"))}</span>'
        f"{_state_badge(entry)}</div>",
    ]
    if entry.get("error"):
        parts.append(f'<p class="errtext">Could not read this service from AWS: {_e(entry["error"])}</p>')
    else:
        split = entry.get("split") or {}
        parts.append(_split_bar(split))
        rows = [("Weights", _e(_split_text(split)) if split else "-")]
        deployment = entry.get("deployment")
        if deployment:
            rows.append(
                (
                    "Deployment",
                    f"<b>{_e(deployment.get('phase'))}</b> (generation {_e(deployment.get('generation'))})"
                    f' <span class="muted">{_e(deployment.get("reason"))}</span>',
                )
            )
        else:
            rows.append(("Deployment", "no deployment state yet"))
        lock = entry.get("lock")
        if lock:
            owner = str(lock.get("owner", "?"))
            dag_id, _, run_id = owner.partition("/")
            link = f'<a href="{base}/runs/{_u(dag_id)}/{_u(run_id)}">{_e(owner)}</a>' if run_id else _e(owner)
            rows.append(
                ("Lock", f"held by {link} since {_e(_when(lock.get('since')))} UTC (live: {_e(lock.get('live'))})")
            )
        else:
            rows.append(("Lock", "free: no deployment owns this service"))
        retention = entry.get("retention")
        if retention:
            rows.append(("Retained slot", f"<b>{_e(retention.get('slot'))}</b> until {_until(retention.get('until'))}"))
        else:
            rows.append(("Retained slot", "nothing retained"))
        alarms = entry.get("alarms_in_alarm") or []
        rows.append(
            (
                "Alarms",
                f'<span class="alarm">IN ALARM: {_e(", ".join(alarms))}</span>' if alarms else "none in ALARM",
            )
        )
        latest = links.get("latest_run")
        if latest:
            rows.append(
                (
                    "Latest run",
                    f'<a href="{base}/runs/{_u(latest["dag_id"])}/{_u(latest["run_id"])}">'
                    f"{_e(latest['dag_id'])} / {_e(latest['run_id'])}</a> ({_e(latest.get('state'))})",
                )
            )
        parts.append(
            '<table class="facts">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
        )
        aliases: Mapping[str, Mapping[str, Any]] = entry.get("aliases") or {}
        if aliases:
            slots = sorted({slot for by_slot in aliases.values() for slot in by_slot})
            head = "".join(f"<th>{_e(slot)} alias</th>" for slot in slots)
            body = "".join(
                f"<tr><td>{_e(fn)}</td>"
                + "".join(f"<td>{_e('v' + str(by_slot[s]) if by_slot.get(s) else '-')}</td>" for s in slots)
                + "</tr>"
                for fn, by_slot in sorted(aliases.items())
            )
            parts.append(f'<table style="margin-top:8px"><tr><th>Function</th>{head}</tr>{body}</table>')
    rollback_dag = links.get("rollback_dag_id")
    dag_hint = (
        f' or trigger the <a href="{_e(airflow_root)}/dags/{_u(rollback_dag)}" target="_top">{_e(rollback_dag)}</a> DAG'
        if rollback_dag
        else ""
    )
    parts.append(
        f'<div class="rollback"><b>Emergency rollback:</b> <code>bluegreen rollback --service {_e(name)}</code>'
        f"{dag_hint}</div></div>"
    )
    return "".join(parts)


def _services_page(entries: list[dict[str, Any]], links: Mapping[str, Any], base: str, airflow_root: str) -> str:
    now = datetime.now(UTC).strftime("%H:%M:%S")
    header = (
        "<h1>Blue/green deployments</h1>"
        f'<div class="muted">Read from AWS at {now} UTC · refreshes every {REFRESH_SECONDS} s · '
        f'<a href="{base}/api/services">JSON</a></div>'
    )
    if not entries:
        return _page(
            "Blue/green deployments", header + "<p>No DAG file registers a blue/green service.</p>", refresh=True
        )
    cards = "".join(_service_card(e, links.get(e["service"], {}), base, airflow_root) for e in entries)
    return _page("Blue/green deployments", header + cards, refresh=True)


def _track(stage: Mapping[str, Any], run: Mapping[str, Any], now: datetime) -> str:
    """A bar placing the stage within the run, like one row of a Gantt chart."""
    if stage.get("duration_s") is None or not stage.get("start_date") or not run.get("start_date"):
        return '<div class="track"></div>'
    run_start = datetime.fromisoformat(run["start_date"])
    run_end = datetime.fromisoformat(run["end_date"]) if run.get("end_date") else now
    span = max((run_end - run_start).total_seconds(), 1e-6)
    start = (datetime.fromisoformat(stage["start_date"]) - run_start).total_seconds()
    left = min(max(100 * start / span, 0), 100)
    width = min(max(100 * (stage.get("duration_s") or 0) / span, 0), 100 - left)
    return f'<div class="track"><div style="left:{left:.2f}%;width:{width:.2f}%"></div></div>'


def _run_page(run: Mapping[str, Any], base: str, airflow_root: str) -> str:
    now = datetime.now(UTC)
    finished = run.get("state") in FINISHED_RUN_STATES
    run_link = f"{_e(airflow_root)}/dags/{_u(run['dag_id'])}/runs/{_u(run['run_id'])}"
    header = (
        f"<h1>{_e(run['dag_id'])} / {_e(run['run_id'])}</h1>"
        f'<div class="muted">Run <span class="state s-{_e(run.get("state"))}">{_e(run.get("state"))}</span> · '
        f"started {_e(_when(run.get('start_date')))} · ended {_e(_when(run.get('end_date')))} · "
        f"took {_e(format_duration(run.get('duration_s')))}"
        + ("" if finished else f" · refreshes every {REFRESH_SECONDS} s")
        + f' · <a href="{base}/">all services</a> · <a href="{run_link}" target="_top">Airflow run</a> · '
        f'<a href="{base}/api/runs/{_u(run["dag_id"])}/{_u(run["run_id"])}">JSON</a></div>'
    )
    rows = []
    for stage in run["stages"]:
        state = stage.get("state") or "none"
        ran = state not in NEVER_RAN_STATES
        duration = format_duration(stage.get("duration_s")) + (" so far" if stage.get("running") else "")
        rows.append(
            f"<tr><td><b>{_e(stage['task_id'])}</b></td>"
            f'<td class="state s-{_e(state)}">{_e(state)}</td>'
            f'<td class="nowrap">{_e(_when(stage.get("start_date") if ran else None))}</td>'
            f'<td class="nowrap">{_e(_when(stage.get("end_date") if ran else None))}</td>'
            f'<td class="nowrap">{_e(duration)}</td><td>{_track(stage, run, now)}</td>'
            f"<td>{_e(describe_summary(stage.get('summary')))}</td></tr>"
        )
    table = (
        '<table class="stages" style="margin-top:14px"><tr><th>Stage</th><th>State</th><th>Start (UTC)</th>'
        "<th>End (UTC)</th><th>Duration</th><th>Timeline</th><th>Summary</th></tr>" + "".join(rows) + "</table>"
    )
    return _page(f"{run['dag_id']} / {run['run_id']}", header + table, refresh=not finished)


def _base(request: Request) -> str:
    """Where this app is mounted (``/bluegreen``, behind any Airflow base path), for its own links."""
    return html.escape(request.scope.get("root_path", "").rstrip("/"))


def _airflow_root(request: Request) -> str:
    """The Airflow UI's root, for links that leave this view (opened in the top window, not the iframe)."""
    root = request.scope.get("root_path", "").rstrip("/")
    return root[: -len(MOUNT_PATH)] if root.endswith(MOUNT_PATH) else ""


def _error_page(title: str, message: str) -> str:
    return _page(title, f"<h1>{_e(title)}</h1><p class='errtext'>{_e(message)}</p>", refresh=True)


# -- the app ----------------------------------------------------------------------------------------


def create_app(*, require_login: bool = True) -> FastAPI:
    """The FastAPI app the plugin mounts at ``/bluegreen``.

    ``require_login=False`` serves without Airflow's authentication, for a standalone preview only.
    """
    dependencies = [Depends(_require_dag_read)] if require_login else []
    app = FastAPI(
        title="Blue/green deployments",
        description="On-call view of blue/green deployments: live traffic split and deployment timelines.",
        dependencies=dependencies,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def services_or_error() -> list[dict[str, Any]]:
        try:
            return collect_services(_dags_folder(), aws_conn_id=_aws_conn_id())
        except Exception as err:  # a broken DAG file: say so instead of a bare 500
            log.exception("bluegreen UI: could not load the DAG files")
            raise HTTPException(
                500, f"could not load the DAG files to find services: {type(err).__name__}: {err}"
            ) from err

    @app.get("/api/services")
    def api_services() -> list[dict[str, Any]]:
        """What AWS says about every service, as JSON."""
        return services_or_error()

    @app.get("/", response_class=HTMLResponse)
    def services_page(request: Request) -> HTMLResponse:
        """The on-call overview: one card per service."""
        try:
            entries = services_or_error()
        except HTTPException as err:
            return HTMLResponse(_error_page("Blue/green deployments", str(err.detail)), status_code=500)
        links = _service_dags(e["service"] for e in entries)
        return HTMLResponse(_services_page(entries, links, _base(request), _airflow_root(request)))

    def timeline_or_404(dag_id: str, run_id: str) -> dict[str, Any]:
        run = run_timeline(dag_id, run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r} of DAG {dag_id!r}")
        return run

    @app.get("/api/runs/{dag_id}/{run_id:path}")
    def api_run(dag_id: str, run_id: str) -> JSONResponse:
        """One run's stages, times and stage summaries, as JSON."""
        return JSONResponse(timeline_or_404(dag_id, run_id))

    @app.get("/runs/{dag_id}/{run_id:path}", response_class=HTMLResponse)
    def run_page(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
        """One run's timeline: a row per stage."""
        try:
            run = timeline_or_404(dag_id, run_id)
        except HTTPException as err:
            return HTMLResponse(_error_page("Run not found", str(err.detail)), status_code=err.status_code)
        return HTMLResponse(_run_page(run, _base(request), _airflow_root(request)))

    return app

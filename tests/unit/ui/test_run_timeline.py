"""The run timeline: a real DAG run in the metadata DB (``dag.test()``), read back as HTML and JSON."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import pytest

from .dags import timeline_run

STAGE_ORDER = ["plan", "deploy_green", "shift_10", "soak_10", "approval", "shift_100", "rollback"]


@pytest.fixture(scope="module")
def finished_run(ui_test_bundle):
    """One finished run of the stand-in DAG."""
    dag_run = timeline_run.dag.test()
    assert dag_run.state == "success"
    return dag_run


def _url(kind: str, dag_run) -> str:
    return f"{kind}/{dag_run.dag_id}/{quote(dag_run.run_id, safe='')}"


def test_json_lists_every_stage_in_story_order_with_times_and_summaries(client, finished_run):
    reply = client.get(_url("/api/runs", finished_run))

    assert reply.status_code == 200
    run = reply.json()
    assert (run["dag_id"], run["run_id"], run["state"]) == (timeline_run.DAG_ID, finished_run.run_id, "success")
    stages = {s["task_id"]: s for s in run["stages"]}
    assert [s["task_id"] for s in run["stages"]] == STAGE_ORDER
    for task_id in STAGE_ORDER[:-1]:
        stage = stages[task_id]
        assert stage["state"] == "success"
        start, end = datetime.fromisoformat(stage["start_date"]), datetime.fromisoformat(stage["end_date"])
        assert stage["duration_s"] == pytest.approx((end - start).total_seconds(), abs=1.0)
        assert stage["running"] is False
    assert stages["soak_10"]["duration_s"] >= timeline_run.SOAK_SECONDS
    assert stages["shift_10"]["summary"] == timeline_run.SHIFT_10
    assert stages["soak_10"]["summary"] == timeline_run.SOAK_10
    assert stages["approval"]["summary"] == timeline_run.APPROVAL
    assert stages["deploy_green"]["summary"] is None
    skipped = stages["rollback"]
    assert (skipped["state"], skipped["duration_s"], skipped["summary"]) == ("skipped", None, None)


def test_html_shows_a_row_per_stage_with_state_duration_and_summary(client, finished_run):
    reply = client.get(_url("/runs", finished_run))

    assert reply.status_code == 200
    page = reply.text
    rows = page.split("<tr>")[2:]  # after the header row
    assert [row.split("<b>")[1].split("</b>")[0] for row in rows] == STAGE_ORDER
    soak_row = rows[STAGE_ORDER.index("soak_10")]
    assert 'class="state s-success">success<' in soak_row
    assert "840 requests, 3 errors; error rate 0.36 % (limit 0.8 %); alarms: none; soaked 5 m 00 s; clean" in soak_row
    assert "traffic blue 90 / green 10 (was blue 100 / green 0)" in rows[STAGE_ORDER.index("shift_10")]
    assert "approve by Ada Oncall at 2026-11-26 12:30:00 via response" in rows[STAGE_ORDER.index("approval")]
    assert "previous slot retained until 2026-11-27 12:31:00" in rows[STAGE_ORDER.index("shift_100")]
    assert 'class="state s-skipped">skipped<' in rows[STAGE_ORDER.index("rollback")]
    # A finished run no longer refreshes itself; the services overview does.
    assert 'http-equiv="refresh"' not in page


def test_unknown_run_is_404_in_both_forms(client, airflow_db):
    assert client.get("/api/runs/no_such_dag/manual__1").status_code == 404
    reply = client.get("/runs/no_such_dag/manual__1")
    assert reply.status_code == 404
    assert "no run &#x27;manual__1&#x27; of DAG &#x27;no_such_dag&#x27;" in reply.text


def test_run_pages_need_a_login_and_dag_read_permission(client, token_for, finished_run):
    url = _url("/api/runs", finished_run)
    client.cookies.clear()
    assert client.get(url).status_code == 401
    client.cookies.set("_token", token_for(None))
    assert client.get(url).status_code == 403

"""The run timeline: a real DAG run in the metadata DB (``dag.test()``), read back as HTML and JSON."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import pytest
from bs4 import BeautifulSoup

from .dags import timeline_run

STAGE_ORDER = ["plan", "deploy_green", "shift_10", "soak_10", "approval", "shift_100", "rollback"]
SENTENCES = {
    "shift_10": "12:04:12 shifted to 10 % (blue 90 / green 10), INSYNC after 4 s",
    "soak_10": "soak 10 %: 840 requests, 0.36 % errors, limit 5 %; live blue 0.2 % (15 of 7560); peak 0.8 %; "
    "no alarm in ALARM; soaked 5 m 00 s; clean",
    "approval": "12:30:00 approved by Ada Oncall via response",
    "shift_100": "12:31:00 promoted green to 100 % (blue 0 / green 100), INSYNC after 3 s; approved by Ada Oncall "
    "via response; blue kept until 2026-11-27 12:31:00 UTC for emergency rollback",
    "rollback": "skipped",
}


@pytest.fixture(scope="module")
def finished_run(ui_test_bundle):
    """One finished run of the stand-in DAG."""
    dag_run = timeline_run.dag.test()
    assert dag_run.state == "success"
    return dag_run


def _url(kind: str, dag_run) -> str:
    return f"{kind}/{dag_run.dag_id}/{quote(dag_run.run_id, safe='')}"


def test_json_lists_every_stage_in_the_order_it_ran_with_times_records_and_sentences(client, finished_run):
    reply = client.get(_url("/api/runs", finished_run))

    assert reply.status_code == 200
    run = reply.json()
    assert (run["dag_id"], run["run_id"], run["state"]) == (timeline_run.DAG_ID, finished_run.run_id, "success")
    assert [s["task_id"] for s in run["stages"]] == STAGE_ORDER
    stages = {s["task_id"]: s for s in run["stages"]}
    starts = [datetime.fromisoformat(s["start_date"]) for s in run["stages"][:-1]]
    assert starts == sorted(starts)
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
    assert (skipped["state"], skipped["duration_s"], skipped["summary"], skipped["ran"]) == (
        "skipped",
        None,
        None,
        False,
    )
    for task_id, sentence in SENTENCES.items():
        assert stages[task_id]["sentence"].endswith(sentence), (task_id, stages[task_id]["sentence"])
    assert stages["plan"]["sentence"].endswith(
        "planned: blue is live, green takes the release; traffic blue 100 / green 0"
    )


def test_html_has_a_row_per_stage_in_order_each_with_its_state_duration_and_sentence(client, finished_run):
    run = client.get(_url("/api/runs", finished_run)).json()
    reply = client.get(_url("/runs", finished_run))

    assert reply.status_code == 200
    page = BeautifulSoup(reply.text, "html.parser")
    rows = page.select("ol.timeline > li.stage")
    assert [row["data-task-id"] for row in rows] == STAGE_ORDER
    shown = [datetime.fromisoformat(row.time["datetime"]) for row in rows if row.time["datetime"]]
    assert len(shown) == len(STAGE_ORDER) - 1 and shown == sorted(shown)  # the skipped rollback has no time
    for row, stage in zip(rows, run["stages"], strict=True):
        # The row's time is the stage's start; the sentence repeats a time only where its own differs.
        own_time = stage["said_at"] and row.time.get_text() != stage["sentence"][:8]
        assert " ".join(row.select_one(".sentence").get_text().split()) == (
            stage["sentence"] if own_time else stage["text"]
        )
        assert row.select_one(".state").get_text() == stage["state"]
        assert row["data-state"] == stage["state"]
    said = {row["data-task-id"]: " ".join(row.select_one(".sentence").get_text().split()) for row in rows}
    assert said["shift_10"] == SENTENCES["shift_10"]  # submitted at 12:04:12, a time of its own
    assert said["deploy_green"] == "done"
    soak = rows[STAGE_ORDER.index("soak_10")]
    assert soak.select_one(".dur").get_text().endswith(" s")
    assert "limit 5 %" in soak.select_one(".sentence").get_text()
    assert "limit 0.8" not in reply.text
    # A finished run no longer refreshes itself; the services overview does.
    assert page.find("meta", attrs={"http-equiv": "refresh"}) is None


def test_the_soak_row_charts_every_sample_against_the_threshold(client, finished_run):
    page = BeautifulSoup(client.get(_url("/runs", finished_run)).text, "html.parser")

    charts = {row["data-task-id"]: row.select_one("svg") for row in page.select("li.stage")}
    assert [task for task, svg in charts.items() if svg is not None] == ["soak_10"]
    svg = charts["soak_10"]
    (candidate,) = svg.select("polyline.rate.candidate")
    assert len(candidate["points"].split()) == len(timeline_run.SAMPLES)
    assert len(svg.select("polyline.rate.live")[0]["points"].split()) == len(timeline_run.SAMPLES)
    assert svg["data-threshold-pct"] == "5"
    assert svg.select_one("text.threshold-label").get_text() == "limit 5 %"


def test_unknown_run_is_404_in_both_forms(client, airflow_db):
    assert client.get("/api/runs/no_such_dag/manual__1").status_code == 404
    reply = client.get("/runs/no_such_dag/manual__1")
    assert reply.status_code == 404
    message = BeautifulSoup(reply.text, "html.parser").select_one(".errtext").get_text()
    assert message == "no run 'manual__1' of DAG 'no_such_dag'"


def test_the_stylesheet_is_served(client):
    reply = client.get("/static/bluegreen.css")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/css")
    assert ".soak-chart .threshold" in reply.text


def test_run_pages_need_a_login_and_dag_read_permission(client, token_for, finished_run):
    url = _url("/api/runs", finished_run)
    client.cookies.clear()
    assert client.get(url).status_code == 401
    client.cookies.set("_token", token_for(None))
    assert client.get(url).status_code == 403

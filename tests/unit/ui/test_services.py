"""The services overview against the sandbox's moto world, seeded as the lego DAG expects it.

The world is put mid-deployment through the real state transitions: a run of the deployment DAG
owns the service, green's ``lego-api-moc`` alias serves a new version, blue 90 / green 10, and one
alarm fires. A retained slot is another world (``test_services_retained.py``): a new deployment
ends any retention. The DAG files are the repository's own (``AIRFLOW__CORE__DAGS_FOLDER``), plus,
where a test says so, a second service whose Route53 record does not exist.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import pytest

from bluegreen_provider.dag_factory import REGISTERED_SERVICES

from .dags import lego_stubs
from .lego_world import lego_world

REPO = Path(__file__).resolve().parents[3]
DEPLOY_DAG, ROLLBACK_DAG = lego_stubs.DEPLOY_DAG_ID, lego_stubs.ROLLBACK_DAG_ID
FIRING = "lego-api-moc-errors"

GHOST_DAG_FILE = """
from bluegreen_provider.dag_factory import deployment_dag

deployment_dag(
    "ghost_api_deploy",
    {
        "service": "ghost-api",
        "hosted_zone": "lego-mocs.com",
        "record_name": "ghost.lego-mocs.com",
        "functions": [{"name": "ghost-api-fn", "version": "1"}],
    },
)
"""


@pytest.fixture(scope="module")
def world(ui_test_bundle):
    """The sandbox world mid-deployment (blue 90 / green 10), owned by a run of the stand-in deployment DAG."""
    with lego_world() as found:
        state = found["state"]
        assert (state.phase, state.owner, state.live, state.split) == (
            "shifting",
            found["owner"],
            "blue",
            {"blue": 90, "green": 10},
        )
        yield found


@pytest.fixture
def with_ghost_service(tmp_path, monkeypatch):
    """A dags folder with the lego DAG file and a second service whose record was never created."""
    (tmp_path / "blue_green_deploy.py").symlink_to(REPO / "dags" / "blue_green_deploy.py")
    (tmp_path / "ghost_api.py").write_text(GHOST_DAG_FILE)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    return tmp_path


def _lego(entries: list[dict]) -> dict:
    return next(e for e in entries if e["service"] == "lego-api")


def test_json_reports_split_lock_state_versions_and_alarms(client, world):
    reply = client.get("/api/services")

    assert reply.status_code == 200
    lego = _lego(reply.json())
    assert lego["error"] is None
    assert lego["split"] == {"blue": 90, "green": 10}
    assert lego["state"] == "SPLIT (deployment in progress or held)"
    assert lego["live"] is None
    assert lego["lock"]["owner"] == f"{DEPLOY_DAG}/{world['run_id']}"
    assert lego["lock"]["live"] == "blue"
    recorded = world["state"]
    assert lego["deployment"] == {
        "phase": "shifting",
        "generation": recorded.generation,
        "owner": f"{DEPLOY_DAG}/{world['run_id']}",
        "reason": recorded.reason,
    }
    assert recorded.generation == 3  # plan, deploy, shift
    assert lego["retention"] is None  # a deployment in progress retains nothing
    assert lego["aliases"]["lego-api-moc"] == {"blue": "1", "green": world["version"]}
    assert lego["aliases"]["lego-api-profile"] == {"blue": "1", "green": "1"}
    assert lego["alarms_in_alarm"] == [FIRING]


def test_page_shows_the_split_and_what_on_call_needs(client, world):
    reply = client.get("/")

    assert reply.status_code == 200
    page = reply.text
    assert '<meta http-equiv="refresh" content="10">' in page
    assert 'title="blue: weight 90">blue 90%</div>' in page
    assert 'title="green: weight 10">green 10%</div>' in page
    assert "SPLIT (deployment in progress or held)" in page
    assert f"Deployment</th><td><b>shifting</b> (generation {world['state'].generation})" in page
    assert "Retained slot</th><td>nothing retained" in page
    run_href = f"/runs/{DEPLOY_DAG}/{quote(world['run_id'], safe='')}"
    assert f'<a href="{run_href}">{DEPLOY_DAG}/{world["run_id"]}</a>' in page
    assert f"IN ALARM: {FIRING}" in page
    assert f"<td>lego-api-moc</td><td>v1</td><td>v{world['version']}</td>" in page
    assert "<code>bluegreen rollback --service lego-api</code>" in page
    # Any DAG tagged as lego-api's rollback qualifies: the stub, or the real one once another test serialized it.
    assert any(f'<a href="/dags/{d}" target="_top">{d}</a>' in page for d in (ROLLBACK_DAG, "bluegreen_rollback"))
    assert f'Latest run</th><td><a href="{run_href}">' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page  # self-contained


def test_lock_owner_link_opens_that_runs_timeline(client, world):
    href = client.get("/").text.split('Lock</th><td>held by <a href="')[1].split('"')[0]
    reply = client.get(href)
    assert reply.status_code == 200
    assert f"{DEPLOY_DAG} / {world['run_id']}" in reply.text


def test_a_service_without_its_record_is_an_error_entry_not_a_failed_page(client, world, with_ghost_service):
    with mock.patch.dict(REGISTERED_SERVICES):
        services = client.get("/api/services")
        page = client.get("/")

    assert services.status_code == 200
    by_name = {e["service"]: e for e in services.json()}
    assert set(by_name) == {"ghost-api", "lego-api"}
    assert "ghost.lego-mocs.com" in by_name["ghost-api"]["error"]
    assert by_name["lego-api"]["split"] == {"blue": 90, "green": 10}
    assert page.status_code == 200
    ghost_card = page.text.split('id="svc-ghost-api"')[1].split('id="svc-lego-api"')[0]
    assert "STATUS UNAVAILABLE" in ghost_card
    assert "Could not read this service from AWS" in ghost_card
    assert "<code>bluegreen rollback --service ghost-api</code>" in ghost_card
    assert 'title="blue: weight 90">blue 90%</div>' in page.text


@pytest.fixture
def aws_unreachable(monkeypatch) -> None:
    """``aws_default`` aimed at a loopback port nothing listens on, failing fast (one attempt)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    extra = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "region_name": "us-east-1",
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))


def test_unreachable_aws_is_each_services_error(client, world, aws_unreachable):
    with mock.patch.dict(REGISTERED_SERVICES):
        reply = client.get("/api/services")

    assert reply.status_code == 200
    assert "Could not connect" in _lego(reply.json())["error"]


def test_a_dag_file_that_fails_to_import_is_a_500_that_says_so(client, tmp_path, monkeypatch, airflow_db):
    (tmp_path / "broken.py").write_text("raise RuntimeError('half-edited DAG file')\n")
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))

    reply = client.get("/")

    assert reply.status_code == 500
    assert "RuntimeError: half-edited DAG file" in reply.text


def test_services_need_a_login(client):
    client.cookies.clear()
    assert client.get("/api/services").status_code == 401
    assert client.get("/").status_code == 401

"""The services overview against the sandbox's moto world, for the service the test bundle's DAGs deploy.

The world is put mid-deployment through the real state transitions: a run of the service's
deployment DAG owns it, green's ``lego-api-moc`` alias serves a new version, blue 90 / green 10, and
one alarm fires. The service is found in the stored (serialized) DAGs, as in the api-server. A
retained slot is another world (``test_services_retained.py``): a new deployment ends any retention.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from bs4 import BeautifulSoup

from .conftest import store_dags
from .dags import oncall_dags
from .lego_world import FIRING, lego_world

SERVICE, DEPLOY_DAG, ROLLBACK_DAG = oncall_dags.SERVICE, oncall_dags.DEPLOY_DAG_ID, oncall_dags.ROLLBACK_DAG_ID
# The shared test DB holds other tests' services too: the overview is asked for ours by name, so AWS is
# read for them alone (the view reads every service when none is named).
OURS = f"?service={SERVICE}"

GHOST_DAG_FILE = """
# An Airflow DAG file for a service whose Route53 record was never created.
from bluegreen_provider.dag_factory import deployment_dag

deployment_dag(
    "bluegreen_ui_ghost_deploy",
    {
        "service": "bluegreen-ui-ghost",
        "hosted_zone": "lego-mocs.com",
        "record_name": "ghost.lego-mocs.com",
        "functions": [{"name": "ghost-api-fn", "version": "1"}],
    },
)
"""


@pytest.fixture(scope="module")
def world(ui_dags):
    """The sandbox world mid-deployment (blue 90 / green 10), owned by a run of the service's deployment DAG."""
    assert {DEPLOY_DAG, ROLLBACK_DAG} <= set(ui_dags)
    with lego_world() as found:
        state = found["state"]
        assert (state.phase, state.owner, state.live, state.split) == (
            "shifting",
            found["owner"],
            "blue",
            {"blue": 90, "green": 10},
        )
        yield found


def _ours(entries: list[dict], service: str = SERVICE) -> dict:
    return next(e for e in entries if e["service"] == service)


def _card(page: str, service: str = SERVICE):
    return next(c for c in BeautifulSoup(page, "html.parser").select("section.card") if c["data-service"] == service)


def _text(node) -> str:
    return " ".join(node.get_text(" ").split())


def test_json_reports_split_lock_state_versions_alarms_and_dags(client, world):
    reply = client.get(f"/api/services{OURS}")

    assert reply.status_code == 200
    ours = _ours(reply.json())
    assert ours["error"] is None
    assert ours["split"] == {"blue": 90, "green": 10}
    assert ours["state"] == "SPLIT (deployment in progress or held)"
    assert ours["live"] is None
    assert ours["lock"]["owner"] == f"{DEPLOY_DAG}/{world['run_id']}"
    assert ours["lock"]["live"] == "blue"
    recorded = world["state"]
    assert ours["deployment"] == {
        "phase": "shifting",
        "generation": recorded.generation,
        "owner": f"{DEPLOY_DAG}/{world['run_id']}",
        "reason": recorded.reason,
    }
    assert recorded.generation == 3  # plan, deploy, shift
    assert ours["retention"] is None  # a deployment in progress retains nothing
    assert ours["aliases"]["lego-api-moc"] == {"blue": "1", "green": world["version"]}
    assert ours["aliases"]["lego-api-profile"] == {"blue": "1", "green": "1"}
    assert ours["alarms_in_alarm"] == [FIRING]
    assert (ours["deploy_dag_ids"], ours["rollback_dag_id"]) == ([DEPLOY_DAG], ROLLBACK_DAG)
    assert ours["latest_run"] == {"dag_id": DEPLOY_DAG, "run_id": world["run_id"], "state": "running"}
    assert ours["config_from"] == f"DAG {DEPLOY_DAG}"


def test_page_shows_both_slots_of_the_split_and_what_on_call_needs(client, world):
    reply = client.get(f"/{OURS}")

    assert reply.status_code == 200
    assert [c["data-service"] for c in BeautifulSoup(reply.text, "html.parser").select("section.card")] == [SERVICE]
    card = _card(reply.text)
    assert _text(card.select_one("[data-role=state]")) == "SPLIT blue 90 / green 10"
    cells = {c["data-slot"]: (_text(c), c["title"]) for c in card.select("[data-role=split] [data-slot]")}
    assert cells == {"blue": ("blue 90 %", "blue: weight 90"), "green": ("green 10 %", "green: weight 10")}
    assert _text(card.select_one("[data-role=deployment] td")) == (
        f"shifting (generation {world['state'].generation}): {world['state'].reason}"
    )
    assert _text(card.select_one("[data-role=retention] td")) == "nothing retained"
    run_href = f"/runs/{DEPLOY_DAG}/{quote(world['run_id'], safe='')}"
    lock = card.select_one("[data-role=lock] a")
    assert (lock["href"], _text(lock)) == (run_href, f"{DEPLOY_DAG}/{world['run_id']}")
    assert _text(card.select_one("[data-role=alarms] td")) == f"IN ALARM: {FIRING}"
    aliases = {
        tr.td.get_text(): [_text(td) for td in tr.select("td")[1:]] for tr in card.select("[data-role=aliases] tr")[1:]
    }
    assert aliases["lego-api-moc"] == ["v1", f"v{world['version']}"]
    rollback = card.select_one("[data-role=rollback]")
    assert rollback.code.get_text() == f"bluegreen rollback --service {SERVICE}"
    assert (rollback.a["href"], rollback.a["target"]) == (f"/dags/{ROLLBACK_DAG}", "_top")
    assert card.select_one("[data-role=latest-run] a")["href"] == run_href


def test_lock_owner_link_opens_that_runs_timeline(client, world):
    href = _card(client.get(f"/{OURS}").text).select_one("[data-role=lock] a")["href"]
    reply = client.get(href)
    assert reply.status_code == 200
    assert BeautifulSoup(reply.text, "html.parser").h1.get_text() == f"{DEPLOY_DAG} / {world['run_id']}"


def test_a_service_without_its_record_is_an_error_entry_not_a_failed_page(client, world, tmp_path):
    (tmp_path / "ghost_api.py").write_text(GHOST_DAG_FILE)
    store_dags(tmp_path, "bluegreen-ui-ghost")

    both = f"{OURS}&service=bluegreen-ui-ghost"
    services = client.get(f"/api/services{both}")
    page = client.get(f"/{both}")

    assert services.status_code == 200 and page.status_code == 200
    ghost = _ours(services.json(), "bluegreen-ui-ghost")
    assert "ghost.lego-mocs.com" in ghost["error"]
    assert _ours(services.json())["split"] == {"blue": 90, "green": 10}
    card = _card(page.text, "bluegreen-ui-ghost")
    assert _text(card.select_one("[data-role=state]")) == "STATUS UNAVAILABLE"
    assert _text(card.select_one("[data-role=error]")).startswith("Could not read this service: ")
    assert card.select_one("[data-role=rollback]").code.get_text() == "bluegreen rollback --service bluegreen-ui-ghost"
    assert _text(_card(page.text).select_one("[data-role=state]")) == "SPLIT blue 90 / green 10"


def test_unreachable_aws_is_each_services_error(client, world, aws_unreachable):
    reply = client.get(f"/api/services{OURS}")

    assert reply.status_code == 200
    assert "Could not connect" in _ours(reply.json())["error"]


def test_a_service_no_dag_deploys_is_404_naming_those_that_do(client, world):
    reply = client.get("/api/services?service=no-such-api")

    assert reply.status_code == 404
    assert reply.json()["detail"].startswith("no service 'no-such-api'; the DAGs deploy: ")
    assert SERVICE in reply.json()["detail"]
    assert client.get("/?service=no-such-api").status_code == 404


def test_services_need_a_login(client):
    client.cookies.clear()
    assert client.get("/api/services").status_code == 401
    assert client.get("/").status_code == 401


# Last in the module: the hold and its resume move the world's generation on.
def test_a_held_deployment_shows_held_and_why(client, world):
    from bluegreen_provider.state import hold, resume

    reason = "held: rejected by Ada Oncall at 2026-11-26 12:30:00 UTC"
    hold(world["svc"], world["owner"], reason)
    try:
        card = _card(client.get(f"/{OURS}").text)
    finally:
        resume(world["svc"], world["owner"], "resumed by the test")

    assert _text(card.select_one("[data-role=deployment] td")) == f"held (generation 4): {reason}"
    assert _text(card.select_one("[data-role=state]")) == "SPLIT blue 90 / green 10"  # a hold keeps the split

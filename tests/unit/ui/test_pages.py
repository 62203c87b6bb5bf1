"""The services overview as a person reads it, rendered from status entries (no AWS, no DB).

The entries are what :func:`bluegreen_provider.status.service_status` returns, built with its own
dataclass, plus the links :func:`collect_services` adds. The page is parsed, so each assertion is
about what a card says, not about where in the markup a substring happens to sit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bs4 import BeautifulSoup

from bluegreen_provider.status import ServiceStatus
from bluegreen_provider.ui.pages import services_page

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SCRIPT = "<script>alert('x')</script>"


def entry(service: str = "lego-api", split=None, **fields) -> dict:
    status = ServiceStatus(
        service=service,
        record="api.lego-mocs.com",
        split=split if split is not None else {"blue": 100, "green": 0},
        live=None,
        lock=fields.pop("lock", None),
        retention=fields.pop("retention", None),
        deployment=fields.pop("deployment", None),
        aliases=fields.pop("aliases", {"lego-api-moc": {"blue": "1", "green": "2"}}),
        alarms_in_alarm=fields.pop("alarms", []),
    )
    positive = [slot for slot, weight in status.split.items() if weight > 0]
    status.live = positive[0] if len(positive) == 1 else None
    links = {"deploy_dag_ids": ["blue_green_deploy"], "rollback_dag_id": "bluegreen_rollback", "latest_run": None}
    return {**status.to_dict(), "error": None, "config_from": "DAG blue_green_deploy", **links, **fields}


def card(*entries: dict, service: str | None = None):
    page = BeautifulSoup(services_page(list(entries), base="/bluegreen", airflow_root="", now=NOW), "html.parser")
    name = service or entries[0]["service"]
    return next(c for c in page.select("section.card") if c["data-service"] == name)


def text(node) -> str:
    return " ".join(node.get_text(" ").split())


def bar(found) -> dict[str, str]:
    """The split bar's visible cells: slot -> label."""
    return {cell["data-slot"]: text(cell) for cell in found.select("[data-role=split] [data-slot]")}


def test_a_service_at_100_0_shows_its_live_slot_at_100_pct_not_no_traffic():
    found = card(entry(split={"blue": 0, "green": 100}))

    assert text(found.select_one("[data-role=state]")) == "green live · 100 %"
    assert "slot-green" in found.select_one("[data-role=state]")["class"]
    assert bar(found) == {"green": "green 100 %"}  # blue's 0 % takes no room in the bar
    assert text(found.select_one("[data-role=weights]")) == "blue 0 % (weight 0) · green 100 % (weight 100)"
    assert "NO TRAFFIC" not in text(found) and "no traffic" not in text(found)


def test_a_90_10_split_shows_both_slots_and_their_weights():
    found = card(entry(split={"blue": 90, "green": 10}))

    assert text(found.select_one("[data-role=state]")) == "SPLIT blue 90 / green 10"
    assert bar(found) == {"blue": "blue 90 %", "green": "green 10 %"}
    widths = {c["data-slot"]: c["style"] for c in found.select("[data-role=split] [data-slot]")}
    assert widths == {"blue": "width: 90.00%", "green": "width: 10.00%"}
    assert text(found.select_one("[data-role=weights]")) == "blue 90 % (weight 90) · green 10 % (weight 10)"


def test_weights_that_are_not_percentages_are_shown_as_shares():
    found = card(entry(split={"blue": 3, "green": 1}))

    assert bar(found) == {"blue": "blue 75 %", "green": "green 25 %"}
    assert text(found.select_one("[data-role=weights]")) == "blue 75 % (weight 3) · green 25 % (weight 1)"


def test_both_weights_zero_is_no_traffic():
    found = card(entry(split={"blue": 0, "green": 0}))

    assert text(found.select_one("[data-role=state]")) == "NO TRAFFIC: every weight is 0"
    assert bar(found) == {}
    assert text(found.select_one("[data-role=split]")) == "no traffic: every weight is 0"


def test_a_held_service_shows_its_phase_and_why():
    reason = "held: rejected by Ada Oncall at 2026-11-26 12:30:00 UTC"
    found = card(
        entry(
            split={"blue": 50, "green": 50},
            deployment={"phase": "held", "generation": 6, "owner": "blue_green_deploy/manual__1", "reason": reason},
            lock={"owner": "blue_green_deploy/manual__1", "since": "2026-11-26T11:58:00+00:00", "live": "blue"},
        )
    )

    deployment = found.select_one("[data-role=deployment] td")
    assert text(deployment) == f"held (generation 6): {reason}"
    assert "warn" in deployment.select_one(".phase")["class"]
    assert text(found.select_one("[data-role=state]")) == "SPLIT blue 50 / green 50"
    lock = found.select_one("[data-role=lock] td")
    assert text(lock) == "held by blue_green_deploy/manual__1 since 2026-11-26 11:58:00 UTC (live: blue)"
    assert lock.a["href"] == "/bluegreen/runs/blue_green_deploy/manual__1"


def test_an_aborted_service_shows_its_phase_and_who_rolled_it_back():
    reason = "manual rollback by oncall: latency"
    found = card(
        entry(
            deployment={"phase": "aborted", "generation": 5, "owner": "blue_green_deploy/manual__1", "reason": reason}
        )
    )

    deployment = found.select_one("[data-role=deployment] td")
    assert text(deployment) == f"aborted (generation 5): {reason}"
    assert "bad" in deployment.select_one(".phase")["class"]
    assert text(found.select_one("[data-role=state]")) == "blue live · 100 %"
    assert text(found.select_one("[data-role=lock] td")) == "free: no deployment owns this service"


def test_a_retained_slot_shows_its_deadline_and_the_time_left():
    until = NOW + timedelta(hours=23, minutes=59)
    found = card(
        entry(
            split={"blue": 0, "green": 100},
            retention={"slot": "blue", "until": until.isoformat(), "owner": "blue_green_deploy/manual__1"},
            deployment={"phase": "retained", "generation": 4, "owner": "blue_green_deploy/manual__1", "reason": ""},
        )
    )

    assert text(found.select_one("[data-role=retention] td")) == (
        "blue until 2026-11-27 11:59:00 UTC (in 23 h 59 m) for emergency rollback"
    )
    assert text(found.select_one("[data-role=deployment] td")) == "retained (generation 4)"


def test_versions_alarms_links_and_the_rollback_command():
    found = card(
        entry(
            alarms=["lego-api-moc-errors", "lego-api-5xx"],
            latest_run={"dag_id": "blue_green_deploy", "run_id": "manual__2026/11", "state": "running"},
        )
    )

    rows = [[text(td) for td in tr.select("td")] for tr in found.select("[data-role=aliases] tr")[1:]]
    assert rows == [["lego-api-moc", "v1", "v2"]]
    assert text(found.select_one("[data-role=alarms] td")) == "IN ALARM: lego-api-moc-errors, lego-api-5xx"
    latest = found.select_one("[data-role=latest-run] a")
    assert latest["href"] == "/bluegreen/runs/blue_green_deploy/manual__2026%2F11"
    rollback = found.select_one("[data-role=rollback]")
    assert rollback.code.get_text() == "bluegreen rollback --service lego-api"
    assert (rollback.a["href"], rollback.a["target"]) == ("/dags/bluegreen_rollback", "_top")
    assert text(found.select_one("[data-role=config] td")) == "from DAG blue_green_deploy"


def test_a_service_aws_could_not_answer_for_is_an_error_card_with_the_rollback_command():
    broken = {"service": "ghost-api", "record": "ghost.lego-mocs.com", "error": "WeightedRecordError: no record"}
    found = card(
        entry(), {**broken, "rollback_dag_id": None, "latest_run": None, "config_from": None}, service="ghost-api"
    )

    assert text(found.select_one("[data-role=state]")) == "STATUS UNAVAILABLE"
    assert text(found.select_one("[data-role=error]")) == "Could not read this service: WeightedRecordError: no record"
    assert found.select_one("[data-role=rollback]").code.get_text() == "bluegreen rollback --service ghost-api"
    assert found.select_one("[data-role=split]") is None


def test_no_service_says_how_one_appears():
    page = BeautifulSoup(services_page([], base="/bluegreen", airflow_root="", now=NOW), "html.parser")

    assert page.select("section.card") == []
    assert "deployment_dag" in text(page.body)


def test_text_from_aws_and_the_dags_reaches_the_page_escaped():
    found = card(
        entry(
            service=f"svc{SCRIPT}",
            split={"blue": 90, "green": 10},
            deployment={"phase": "held", "generation": 2, "owner": f"d/{SCRIPT}", "reason": f"because {SCRIPT}"},
            lock={"owner": f"d/{SCRIPT}", "since": "2026-11-26T11:58:00+00:00", "live": "blue"},
            alarms=[SCRIPT],
        ),
        service=f"svc{SCRIPT}",
    )
    html = services_page([entry(service=f"svc{SCRIPT}", alarms=[SCRIPT])], base="/bluegreen", airflow_root="")

    assert "<script>" not in html
    assert found.find("script") is None
    assert text(found.h2) == f"svc{SCRIPT}"
    assert text(found.select_one("[data-role=deployment] .reason")) == f"because {SCRIPT}"
    assert text(found.select_one("[data-role=alarms] td")) == f"IN ALARM: {SCRIPT}"
    assert (
        found.select_one("[data-role=lock] a")["href"]
        == "/bluegreen/runs/d/%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E"
    )


def test_the_page_refreshes_itself_and_loads_only_its_stylesheet():
    page = BeautifulSoup(services_page([entry()], base="/bluegreen", airflow_root="", now=NOW), "html.parser")

    assert page.find("meta", attrs={"http-equiv": "refresh"})["content"] == "10"
    assert [link["href"] for link in page.find_all("link")] == ["/bluegreen/static/bluegreen.css"]
    assert page.find("script") is None and page.find("style") is None
    assert "Read from AWS at 12:00:00 UTC" in text(page.body)


def test_a_page_for_some_services_links_back_to_all_of_them():
    html = services_page([entry(service="lego api")], base="/bluegreen", airflow_root="", now=NOW, only=["lego api"])
    page = BeautifulSoup(html, "html.parser")

    header = page.select_one("p.muted")
    assert "showing lego api" in text(header)
    links = {a.get_text(): a["href"] for a in header.find_all("a")}
    assert links == {"all services": "/bluegreen/", "JSON": "/bluegreen/api/services?service=lego+api"}
    assert page.select_one("section.card h2 a")["href"] == "/bluegreen/?service=lego%20api"

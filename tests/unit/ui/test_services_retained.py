"""The services overview after a promotion that retains the previous slot (blue) for emergency rollback.

A world of its own: one sandbox per process at a time, and a new deployment would end the retention.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bs4 import BeautifulSoup

from .dags import oncall_dags
from .lego_world import PREVIOUS_OWNER, lego_world

RETAIN_UNTIL = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def retained_world(ui_dags):
    """Green promoted by the previous deployment, blue retained until about ``RETAIN_UNTIL``."""
    with lego_world(retention_seconds=int((RETAIN_UNTIL - datetime.now(UTC)).total_seconds())) as found:
        state = found["state"]
        assert (state.phase, state.live, state.split) == ("retained", "green", {"blue": 0, "green": 100})
        assert state.retained.slot == "blue" and state.retained.owner == PREVIOUS_OWNER
        # The retention counts from the promotion, some seconds into building the world (the record keeps
        # whole seconds, and the retention is given in whole seconds: up to 2 s may be cut off).
        assert -2 <= (state.retained.until_dt - RETAIN_UNTIL).total_seconds() <= 120
        yield found


def _ours(entries: list[dict]) -> dict:
    return next(e for e in entries if e["service"] == oncall_dags.SERVICE)


def _text(node) -> str:
    return " ".join(node.get_text(" ").split())


def test_json_reports_the_retained_slot_and_a_free_lock(client, retained_world):
    ours = _ours(client.get(f"/api/services?service={oncall_dags.SERVICE}").json())

    recorded = retained_world["state"]
    assert ours["split"] == {"blue": 0, "green": 100}
    assert ours["live"] == "green"
    assert ours["state"] == "green live"
    assert ours["lock"] is None
    assert ours["deployment"]["phase"] == "retained"
    assert ours["deployment"]["generation"] == recorded.generation == 4
    assert ours["retention"] == {"slot": "blue", "until": recorded.retained.until, "owner": PREVIOUS_OWNER}


def test_page_shows_green_live_at_100_pct_and_the_retained_slot_until_its_deadline(client, retained_world):
    page = BeautifulSoup(client.get(f"/?service={oncall_dags.SERVICE}").text, "html.parser")
    card = next(c for c in page.select("section.card") if c["data-service"] == oncall_dags.SERVICE)

    assert _text(card.select_one("[data-role=state]")) == "green live · 100 %"
    assert {c["data-slot"]: _text(c) for c in card.select("[data-role=split] [data-slot]")} == {"green": "green 100 %"}
    until = retained_world["state"].retained.until_dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    retention = _text(card.select_one("[data-role=retention] td"))
    assert retention.startswith(f"blue until {until} UTC (in ") and retention.endswith(") for emergency rollback")
    assert _text(card.select_one("[data-role=lock] td")) == "free: no deployment owns this service"
    assert _text(card.select_one("[data-role=deployment] td")).startswith(
        f"retained (generation {retained_world['state'].generation})"
    )

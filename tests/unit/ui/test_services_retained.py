"""The services overview after a promotion that retains the previous slot (blue) for emergency rollback.

A world of its own: one sandbox per process at a time, and a new deployment would end the retention.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from .lego_world import PREVIOUS_OWNER, lego_world

RETAIN_UNTIL = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def retained_world(ui_test_bundle):
    """Green promoted by the previous deployment, blue retained until about ``RETAIN_UNTIL``."""
    with lego_world(retention_seconds=int((RETAIN_UNTIL - datetime.now(UTC)).total_seconds())) as found:
        state = found["state"]
        assert (state.phase, state.live, state.split) == ("retained", "green", {"blue": 0, "green": 100})
        assert state.retained.slot == "blue" and state.retained.owner == PREVIOUS_OWNER
        # The retention counts from the promotion, some seconds into building the world.
        assert 0 <= (state.retained.until_dt - RETAIN_UNTIL).total_seconds() <= 120
        yield found


def _lego(entries: list[dict]) -> dict:
    return next(e for e in entries if e["service"] == "lego-api")


def test_json_reports_the_retained_slot_and_a_free_lock(client, retained_world):
    lego = _lego(client.get("/api/services").json())

    recorded = retained_world["state"]
    assert lego["split"] == {"blue": 0, "green": 100}
    assert lego["live"] == "green"
    assert lego["lock"] is None
    assert lego["deployment"]["phase"] == "retained"
    assert lego["deployment"]["generation"] == recorded.generation == 4
    assert lego["retention"] == {"slot": "blue", "until": recorded.retained.until, "owner": PREVIOUS_OWNER}
    assert abs((datetime.fromisoformat(lego["retention"]["until"]) - RETAIN_UNTIL).total_seconds()) <= 2


def test_page_shows_the_retained_slot_until_its_deadline(client, retained_world):
    page = client.get("/").text

    until = retained_world["state"].retained.until_dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"Retained slot</th><td><b>blue</b> until {until} UTC (in " in page
    assert "Lock</th><td>free: no deployment owns this service" in page
    assert f"Deployment</th><td><b>retained</b> (generation {retained_world['state'].generation})" in page
    assert 'title="green: weight 100">green 100%</div>' in page

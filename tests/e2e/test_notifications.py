"""Notifications end to end: a bad release under the real DAG tells its SNS topic what happened, read back
from the SQS queue subscribed to it."""

from __future__ import annotations

import pytest

from bluegreen_provider.localrun import xcom

from .conftest import E2E_DAGS
from .sns_queue import TopicQueue

pytestmark = pytest.mark.e2e


def test_bad_release_rollback_is_sent_with_what_broke(deploy, sandbox):
    from .dags.variants import NOTIFIED_TOPIC  # here, not at collection: building the variants registers them

    queue = TopicQueue(sandbox, NOTIFIED_TOPIC)

    result = deploy("bad", dag_file=E2E_DAGS / "variants.py", dag_name="notified")

    assert result.state == "failed"
    assert (result.states["soak_10"], result.states["rollback"]) == ("failed", "success")
    sent = queue.by_event()
    assert sorted(sent) == ["rolled_back", "shifted"], sent
    run = f"{result.dag_id}/{result.run_id}"
    verdict = xcom(result.dag_id, result.run_id, "soak_10", key="verdict")
    assert verdict["rule"] == "error_rate" and verdict["message"].startswith("error rate "), verdict
    assert sent["rolled_back"]["Subject"] == "lego-api-notified: rolled back"
    assert sent["rolled_back"]["Message"] == (
        f"lego-api-notified: ROLLED BACK to blue: soak_10 failed (error_rate): {verdict['message']}. "
        f"Traffic now blue 100 / green 0. Run: {run}."
    )
    assert sent["shifted"]["Message"] == (
        f"lego-api-notified: green now takes 10 % of traffic (blue 100 / green 0 → blue 90 / green 10). Run: {run}."
    )

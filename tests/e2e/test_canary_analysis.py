"""Canary analysis under AWS timings, end to end: the real DAG against the sandbox, state read back from it.

The ``aws`` profile is scaled down (seconds instead of minutes) but keeps AWS's order of events:
Route53 PENDING before INSYNC, datapoints published a lag after their period, 8 checker regions.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest

from bluegreen_provider.localrun import xcom

from .aws_state import (
    ALARM_STATES,
    STATE_CHANGES,
    assert_changed_only,
    health_check_paths,
    released_paths,
    sandbox_aws_state,
    settled_aws_state,
    weighted_set,
    weighted_sets,
)
from .conftest import E2E_DAGS, deployment_state
from .routers import ROUTERS, dag_of, traffic, traffic_paths

pytestmark = pytest.mark.e2e

# AWS's rules with scaled numbers: metrics in 5 s periods published 2 s late, checkers every 1.5 s.
AWS_SCALED = {
    "profile": "aws",
    "dns_ttl_seconds": 1,
    "metrics_period_seconds": 5,
    "metrics_lag_seconds": 2,
    "health_check_interval_scale": 0.05,
}
AWS_RUN = {"metrics_period_seconds": 5, "metrics_lag_seconds": 2}


GREEN = "production-green"


def change_for(sandbox, weights: dict[str, int]) -> dict:
    """The first committed Route53 change that left the record at ``weights``."""
    return next(c for c in sandbox.route53_changes() if c["weights"] == weights)


def split_and_checks(state: bytes) -> dict[str, tuple[int, str | None]]:
    """Set identifier -> (weight, health check on the set) of api.lego-mocs.com, read from moto."""
    return {s: (int(r["Weight"]), r.get("HealthCheckId")) for s, r in weighted_sets(state).items()}


def assert_only_candidate_changed(before: bytes, after: bytes, state, *more: str, why: str) -> None:
    """Beside ``more``, only the state record, green's release and the health check the state
    records changed; alarm states move with the traffic's errors (the sandbox's evaluator)."""
    assert_changed_only(
        before,
        after,
        *STATE_CHANGES,
        ALARM_STATES,
        *health_check_paths(state),
        *released_paths(after, GREEN),
        *more,
        why=why,
    )


@pytest.mark.sandbox(**AWS_SCALED, propagation_seconds=30)
def test_breach_while_route53_propagates_rolls_back_before_insync(deploy, sandbox):
    before = settled_aws_state(sandbox)
    result = deploy("bad", **AWS_RUN)

    assert result.state == "failed"
    assert result.states["shift_10"] == "failed", result.states
    assert result.states["soak_10"] == "upstream_failed"
    verdict = xcom(result.dag_id, result.run_id, "shift_10", key="verdict")
    # The bad release breaks the error rate and, as its errors are published, per-function alarms.
    assert verdict["status"] == "breach" and verdict["rule"] in ("error_rate", "alarm"), verdict
    shift = change_for(sandbox, {"blue": 90, "green": 10})
    back = [c for c in sandbox.route53_changes() if c["submitted_at"] > shift["submitted_at"]]
    assert back and back[0]["weights"] == {"blue": 100, "green": 0}, back
    # The rollback was sent while the 10 % change itself was still PENDING.
    assert back[0]["submitted_at"] < shift["insync_at"], (back[0], shift)
    print(
        f"breach seen {back[0]['submitted_at'] - shift['submitted_at']:.1f} s after the shift was submitted; "
        f"its INSYNC came {shift['insync_at'] - shift['submitted_at']:.1f} s after submission"
    )
    state = deployment_state(sandbox)
    assert (state.phase, state.split) == ("rolled_back", {"blue": 100, "green": 0}), state
    assert state.reason.startswith(
        f"shift_10 failed: shift_10: breach while Route53 propagated the change ({verdict['rule']})"
    ), state.reason
    after = sandbox_aws_state(sandbox)
    assert_only_candidate_changed(before, after, state, why="a rollback mid-propagation left AWS changed")
    # 100/0 again, and the check the 10 % batch put on green's set detached by the rollback's batch.
    assert split_and_checks(after) == {"blue": (100, None), "green": (0, None)}


@pytest.mark.sandbox(**{**AWS_SCALED, "metrics_lag_seconds": 10}, propagation_seconds=1)
def test_soak_judges_the_datapoints_that_arrive_after_its_clock_ends(deploy, sandbox):
    # The soak's clock (4 s) ends before any datapoint of the bad release is published (10 s lag):
    # judged at its wall-clock end it would pass, with nothing seen. The verdict waits for the data.
    before = settled_aws_state(sandbox)
    result = deploy("bad", metrics_period_seconds=5, metrics_lag_seconds=10)

    assert result.state == "failed"
    failed = [t for t in ("shift_10", "soak_10") if result.states[t] == "failed"]
    assert failed == ["soak_10"], result.states
    verdict = xcom(result.dag_id, result.run_id, "soak_10", key="verdict")
    assert verdict["status"] == "breach" and verdict["rule"] in ("error_rate", "alarm"), verdict
    shift = result.xcom("shift_10")
    clock_end = datetime.fromisoformat(shift["insync_at"]) + timedelta(seconds=4)
    assert datetime.fromisoformat(verdict["detected_at"]) > clock_end, (verdict["detected_at"], shift["insync_at"])
    state = deployment_state(sandbox)
    assert (state.phase, state.split) == ("rolled_back", {"blue": 100, "green": 0}), state
    assert state.reason.startswith(f"soak_10 failed: soak at 10 % breached ({verdict['rule']})"), state.reason
    after = sandbox_aws_state(sandbox)
    assert_only_candidate_changed(before, after, state, why="a rolled-back soak left AWS changed")
    assert split_and_checks(after) == {"blue": (100, None), "green": (0, None)}


@pytest.mark.parametrize("router", ROUTERS)
def test_alarm_after_promotion_rolls_back_to_the_retained_slot(deploy, sandbox, router):
    fired = threading.Event()

    def fire_after_promotion() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            state = deployment_state(sandbox)
            if state is not None and state.phase == "retained":
                time.sleep(3)  # the guard is watching; the alarm comes "hours" (seconds) later
                sandbox.force_alarm("lego-api-gateway-5xx-errors", reason="5xx spike two hours after promotion")
                fired.set()
                return
            time.sleep(0.5)

    before = settled_aws_state(sandbox)
    watcher = threading.Thread(target=fire_after_promotion, daemon=True)
    watcher.start()
    result = deploy("v2", retention_seconds=120, **dag_of(router))
    watcher.join(5)

    assert fired.is_set()
    assert result.state == "failed"
    assert result.states["shift_100"] == "success"
    assert result.states["teardown_blue"] == "failed", result.states
    verdict = xcom(result.dag_id, result.run_id, "teardown_blue", key="verdict")
    assert verdict["rule"] == "alarm" and "lego-api-gateway-5xx-errors" in verdict["message"], verdict
    rolled = xcom(result.dag_id, result.run_id, "teardown_blue", key="rollback")
    assert rolled["live"] == "blue" and rolled["split_after"] == {"blue": 100, "green": 0}, rolled
    state = deployment_state(sandbox)
    assert (state.phase, state.live, state.split) == ("aborted", "blue", {"blue": 100, "green": 0}), state
    assert state.retained is None, state
    assert state.reason.startswith(
        "post-promotion guard: alarm after promotion: alarm lego-api-gateway-5xx-errors in ALARM"
    ), state.reason
    after = sandbox_aws_state(sandbox)
    # Back on the retained blue (its aliases never moved); green keeps the release at weight 0, and
    # only the alarm this test forced changed state.
    assert_changed_only(
        before,
        after,
        *STATE_CHANGES,
        "cloudwatch/lego-api-gateway-5xx-errors/State*",
        *health_check_paths(state),
        *released_paths(after, GREEN),
        *([] if router == "route53" else traffic_paths(router)),
        why="the post-promotion rollback left AWS changed beyond the state record and green's release",
    )
    assert split_and_checks(after) == {"blue": (100, None), "green": (0, None)}
    assert traffic(router, after) == {"blue": 100, "green": 0}


def test_service_wide_errors_hold_the_step_instead_of_blaming_the_candidate(deploy, sandbox):
    before = settled_aws_state(sandbox)
    sandbox.inject_errors(0.25)  # a failing dependency behind both slots, before and during the canary
    try:
        result = deploy("v2", dag_file=E2E_DAGS / "variants.py", dag_name="no_alarms")
    finally:
        sandbox.inject_errors(0)

    assert result.state == "failed"
    assert result.states["soak_10"] == "skipped", result.states
    assert result.states["hold"] == "failed"
    verdict = xcom(result.dag_id, result.run_id, "soak_10", key="verdict")
    # No rule blames the candidate: both slots are above the threshold and green is not worse.
    assert (verdict["status"], verdict["rule"]) == ("degraded", None), verdict
    assert "live is degraded too" in verdict["message"], verdict
    # Held at the declared step: the rollback teardown keeps the split.
    state = deployment_state(sandbox)
    assert (state.phase, state.split) == ("held", {"blue": 90, "green": 10}), state
    assert state.reason.startswith("held at 10 %: live is degraded too"), state.reason
    after = sandbox_aws_state(sandbox)
    assert_only_candidate_changed(
        before,
        after,
        state,
        weighted_set("blue", "Weight"),
        weighted_set("green", "Weight"),
        weighted_set("green", "HealthCheckId"),
        why="a held step left AWS changed beyond its split, state record and green's release",
    )
    # At the canary split green's set carries the check the state records; blue has none.
    assert split_and_checks(after) == {"blue": (90, None), "green": (10, state.health_checks["green"])}

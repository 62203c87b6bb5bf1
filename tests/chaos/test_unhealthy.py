# ruff: noqa: F811
"""Both slots unhealthy: the rollback still restores the live slot, and says loudly that live is failing too.

A rollback can only go back to live. When live is failing as well (its own health URL, its error
rate), putting all traffic back on it is still the right move (the candidate is worse or untested),
but production is not fixed: the rollback task's result and log and the deployment state's reason
(what ``bluegreen status`` shows) say ``live slot blue is unhealthy too: …``. Everything is read back
from the sandbox: the split, the state record, the rollback's XCom, live's own /health.
"""

from __future__ import annotations

import pytest

from bluegreen_provider.sandbox import Sandbox
from bluegreen_provider.sandbox import world as lego
from bluegreen_provider.state import owner_of

# The e2e fixtures, requested by name below (hence the redefinitions ruff sees as F811).
from tests.e2e.conftest import E2E_DAGS, FAST, deploy, deployment_state, e2e_bundle, sandbox, service_db  # noqa: F401

pytestmark = [pytest.mark.chaos("both unhealthy"), pytest.mark.e2e]

STEPS = [step["weight"] for step in FAST["steps"]]
LIVE = {"blue": 100, "green": 0}
AT_10 = {"blue": 90, "green": 10}


def release_into_live(sandbox: Sandbox, release: str) -> None:
    """Put ``release`` behind blue's aliases by hand, as an earlier deployment would have left it."""
    lam = sandbox.clients()("lambda")
    for function in lego.FUNCTIONS:
        lam.update_function_code(FunctionName=function, ZipFile=sandbox.catalog[release].zip_bytes)
        version = lam.publish_version(FunctionName=function, Description=f"release {release}")["Version"]
        lam.update_alias(FunctionName=function, Name=lego.alias_name("blue"), FunctionVersion=version)


def splits_held(sandbox: Sandbox, report_split) -> list[dict[str, int]]:
    """The distinct splits Route53 held, change by change, each reported to the results; none stray."""
    splits = [change["weights"] for change in sandbox.route53_changes()]
    stray = [split for split in splits if report_split(split, STEPS, candidate=None)]
    assert not stray, f"splits outside the declared steps {STEPS} and 100/0: {stray}"
    return [s for i, s in enumerate(splits) if i == 0 or s != splits[i - 1]]


def assert_said_loudly(result, sandbox: Sandbox, log: str, *, failed_stage: str, problem: str) -> str:
    """The rollback restored blue and said, in its result, its log and the state's reason, that blue fails too."""
    assert result.state == "failed", result.states
    assert result.states[failed_stage] == "failed", result.states
    assert result.states["rollback"] == "success", "the rollback did its job: traffic is on live"
    assert sandbox.weights() == LIVE

    rollback = result.xcom("rollback")
    assert rollback["split_now"] == LIVE, rollback
    [warning] = rollback["warnings"]
    assert warning.startswith("live slot blue is unhealthy too: ") and problem in warning, warning
    assert rollback["live_health"]["healthy"] is False and rollback["live_health"]["slot"] == "blue", rollback
    assert warning in rollback["reason"], rollback

    state = deployment_state(sandbox)
    assert state.owner == owner_of(result.dag_id, result.run_id)
    assert (state.phase, state.live, state.split) == ("rolled_back", "blue", LIVE), state
    assert state.reason.startswith(f"{failed_stage} failed") and state.reason.endswith(f"; {warning}"), state.reason
    assert f"ROLLED BACK ONTO AN UNHEALTHY SLOT: {warning}" in log
    return warning


def test_a_bad_candidate_rolls_back_onto_a_live_slot_whose_health_fails_and_says_so(
    deploy, sandbox, capfd, caplog, report_split
) -> None:
    release_into_live(sandbox, "unhealthy")  # serves requests, but its /health answers 503
    assert sandbox.health("blue")[0] == 503

    result = deploy("bad")
    log = "".join(capfd.readouterr()) + caplog.text

    url = f"{sandbox.http_url}/blue/health"
    assert_said_loudly(
        result, sandbox, log, failed_stage="soak_10", problem=f"its health URL {url}: 3 of last 3 probes returned 503"
    )
    assert splits_held(sandbox, report_split) == [LIVE, AT_10, LIVE]
    assert sandbox.stats()["green"]["errors"] > 0, "the candidate was the worse of the two"
    assert sandbox.health("blue")[0] == 503, "live is still unhealthy: the warning was true"


@pytest.mark.slow
def test_a_worse_candidate_rolls_back_onto_a_live_slot_failing_requests_and_says_so(
    deploy, sandbox, capfd, caplog, report_split
) -> None:
    # A dependency behind blue fails 15 % of its requests; green fails most of its own.
    sandbox.inject_errors(0.15, slot="blue")
    sandbox.inject_errors(0.8, slot="green")
    # Live's errors fire the story's alarms; once they do, the plan excuses those episodes as older
    # than the deployment, and the candidate is judged on its own error rate.
    for _ in range(30):
        if all(state == "ALARM" for state in sandbox.alarm_states().values()):
            break
        sandbox.wait_for_flushes(1)
    assert set(sandbox.alarm_states().values()) == {"ALARM"}, sandbox.alarm_states()
    try:
        result = deploy("v2")
    finally:
        sandbox.inject_errors(0, slot="blue")
        sandbox.inject_errors(0, slot="green")
    log = "".join(capfd.readouterr()) + caplog.text

    warning = assert_said_loudly(result, sandbox, log, failed_stage="soak_10", problem="error rate ")
    assert "% > 5 % over the last 300 s" in warning, warning
    assert splits_held(sandbox, report_split) == [LIVE, AT_10, LIVE]
    verdict = result.xcom("soak_10") or {}
    assert verdict.get("outcome") != "clean", verdict


@pytest.mark.slow
def test_both_slots_failing_their_health_before_any_traffic_moved_says_so(
    deploy, sandbox, capfd, caplog, report_split
) -> None:
    release_into_live(sandbox, "unhealthy")
    result = deploy("unhealthy", dag_file=E2E_DAGS / "variants.py", dag_name="quick_health")
    log = "".join(capfd.readouterr()) + caplog.text

    url = f"{sandbox.http_url}/blue/health"
    assert_said_loudly(
        result, sandbox, log, failed_stage="health_check", problem=f"its health URL {url}: 3 of last 3 probes"
    )
    assert splits_held(sandbox, report_split) == [LIVE], "no traffic ever moved"

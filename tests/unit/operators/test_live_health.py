"""After a rollback the live slot's health is read, and a failing live slot is said loudly.

A rollback can only go back to live. When live is failing too (a shared dependency down, an earlier
bad release), the rollback task's result, its log and the deployment state's reason must say so;
a healthy live slot changes nothing. Every assertion reads moto back.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook
from bluegreen_provider.hooks.route53 import HealthCheckError, HealthCheckStatus, Route53Hook
from bluegreen_provider.plan import Plan
from bluegreen_provider.rollback import live_slot_health, report_live_health
from bluegreen_provider.state import NothingToDo, Phase, record_warning, rollback

from .conftest import FUNCTIONS

BLUE_HEALTH = "http://health.test/blue/health"
GREEN_HEALTH = "http://health.test/green/health"


class Probe:
    """The health URL's answers, in order (the last one repeats), and the URLs asked."""

    def __init__(self, *statuses: int | None) -> None:
        self.statuses = list(statuses)
        self.asked: list[str] = []

    def __call__(self, url: str, timeout: float) -> dict[str, Any]:
        status = self.statuses[min(len(self.asked), len(self.statuses) - 1)]
        self.asked.append(url)
        return {"t": "", "status": status, "error": None if status else "timeout", "ms": 1}


def spec_with_health(world) -> dict[str, Any]:
    slots = {
        colour: {"set_identifier": colour, "alias": f"production-{colour}", "health_url": url}
        for colour, url in (("blue", BLUE_HEALTH), ("green", GREEN_HEALTH))
    }
    return world.spec(slots=slots)


def rolled_back(world, run, stages, spec: dict[str, Any]) -> Plan:
    """run1 at 10 %, then its own rollback: 100 % back on blue."""
    stages.release(run, spec, upto=(10,))
    rollback(world.service(spec), run.owner, "soak_10 failed: error rate")
    return Plan.from_dict(run.xcom("plan"))


def errors_on(world, colour: str, requests: int, errors: int, *, ago: float = 90) -> None:
    """Lambda's Invocations/Errors of every function's ``production-<colour>`` alias, one datapoint each."""
    at = datetime.now(UTC) - timedelta(seconds=ago)
    for fn in FUNCTIONS:
        dims = [{"Name": "FunctionName", "Value": fn}, {"Name": "Resource", "Value": f"{fn}:production-{colour}"}]
        world.cw.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": at, "Value": requests / len(FUNCTIONS)},
                {"MetricName": "Errors", "Dimensions": dims, "Timestamp": at, "Value": errors / len(FUNCTIONS)},
            ],
        )


def test_a_live_slot_failing_its_health_url_is_written_into_the_rolled_back_state(world, new_run, stages, caplog):
    run = new_run("run1")
    spec = spec_with_health(world)
    plan = rolled_back(world, run, stages, spec)
    before = world.state()
    probe = Probe(503)

    with caplog.at_level(logging.ERROR, logger="bluegreen_provider.rollback"):
        health = report_live_health(Route53Hook(), CloudWatchMetricsHook(), plan, run.owner, probe=probe)

    expected = f"live slot blue is unhealthy too: its health URL {BLUE_HEALTH}: 3 of last 3 probes returned 503"
    assert health is not None and health.warning == expected
    assert probe.asked == [BLUE_HEALTH] * 3, "only live is probed"
    state = world.state()
    assert state.reason == f"{before.reason}; {expected}"
    assert (state.phase, state.split, state.generation) == (Phase.ROLLED_BACK, before.split, before.generation + 1)
    assert world.split() == {"blue": 100, "green": 0}
    assert "ROLLED BACK ONTO AN UNHEALTHY SLOT: " + expected in caplog.text


def test_one_failed_probe_of_three_is_a_blip_not_an_unhealthy_slot(world, new_run, stages):
    run = new_run("run1")
    plan = rolled_back(world, run, stages, spec_with_health(world))
    before = world.snapshot()
    health = report_live_health(Route53Hook(), CloudWatchMetricsHook(), plan, run.owner, probe=Probe(503, 200))
    assert health is not None and health.healthy and health.warning is None, health
    assert health.checked == (f"health URL {BLUE_HEALTH}", "error rate over the last 300 s")
    assert world.snapshot() == before

    two_of_three = Probe(None, 503, 200)
    health = live_slot_health(plan, world.state(), route53=Route53Hook(), cloudwatch=CloudWatchMetricsHook(),
                              probe=two_of_three)  # fmt: skip
    assert health.problems == (f"its health URL {BLUE_HEALTH}: 2 of last 3 probes returned timeout (1), 503 (1)",)


def test_a_live_error_rate_above_the_threshold_is_reported(world, new_run, stages):
    run = new_run("run1")
    plan = rolled_back(world, run, stages, world.spec())  # no health URL: only the metrics speak
    errors_on(world, "blue", requests=200, errors=30)
    errors_on(world, "green", requests=40, errors=40)  # the candidate's are not live's

    health = report_live_health(Route53Hook(), CloudWatchMetricsHook(), plan, run.owner)

    expected = "error rate 15.0 % > 5 % over the last 300 s (30 of 200 requests failed)"
    assert health is not None and health.problems == (expected,), health
    assert world.state().reason.endswith(f"; live slot blue is unhealthy too: {expected}")


def test_a_live_error_rate_on_too_few_requests_says_nothing(world, new_run, stages):
    run = new_run("run1")
    plan = rolled_back(world, run, stages, world.spec(min_requests=50))
    errors_on(world, "blue", requests=10, errors=10)
    before = world.snapshot()
    health = report_live_health(Route53Hook(), CloudWatchMetricsHook(), plan, run.owner)
    assert health is not None and health.healthy, health
    assert world.snapshot() == before


class CheckSays(Route53Hook):
    """Route53 as it is, except what GetHealthCheckStatus answers for the live slot's check."""

    def __init__(self, status: HealthCheckStatus | Exception) -> None:
        super().__init__()
        self.answer = status
        self.asked: list[str] = []

    def health_check_status(self, health_check_id: str) -> HealthCheckStatus:
        self.asked.append(health_check_id)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_live_slot_s_route53_health_check_is_judged_by_route53_s_rule(world, new_run, stages):
    run = new_run("run1")
    plan = rolled_back(world, run, stages, world.spec())
    world.force(run.owner, "rolled_back", 100, 0, health_checks={"blue": "hc-blue", "green": "hc-green"})
    failing = HealthCheckStatus("hc-blue", healthy=False, checkers=8, failing=7, detail="7 of 8 checkers failing")
    route53 = CheckSays(failing)

    health = report_live_health(route53, CloudWatchMetricsHook(), plan, run.owner)

    assert route53.asked == ["hc-blue"]
    assert health is not None and health.problems == ("its Route53 health check hc-blue: 7 of 8 checkers failing",)
    assert "its Route53 health check hc-blue" in world.state().reason

    one_region = HealthCheckStatus("hc-blue", healthy=True, checkers=8, failing=1, detail="1 of 8 failing; healthy")
    assert live_slot_health(
        plan, world.state(), route53=CheckSays(one_region), cloudwatch=CloudWatchMetricsHook()
    ).healthy


def test_a_signal_that_cannot_be_read_is_listed_and_judged_neither_way(world, new_run, stages):
    run = new_run("run1")
    plan = rolled_back(world, run, stages, world.spec())
    world.force(run.owner, "rolled_back", 100, 0, health_checks={"blue": "hc-gone"})
    health = live_slot_health(
        plan,
        world.state(),
        route53=CheckSays(HealthCheckError("Health check 'hc-gone' does not exist")),
        cloudwatch=CloudWatchMetricsHook(),
    )
    assert health.healthy and health.unread == (
        "Route53 health check hc-gone: HealthCheckError: Health check 'hc-gone' does not exist",
    ), health


@pytest.mark.parametrize(
    "situation",
    ["promoted", "another run owns it", "still shifting", "never planned"],
)
def test_nothing_is_judged_unless_this_run_s_traffic_is_back_on_live(world, new_run, stages, situation):
    run = new_run("run1")
    spec = spec_with_health(world)
    if situation == "promoted":
        stages.release(run, spec, upto=(10, 50, 100))
    elif situation == "another run owns it":
        rolled_back(world, run, stages, spec)
        stages.release(new_run("run2"), spec, upto=(10,))
    elif situation == "still shifting":
        stages.release(run, spec, upto=(10,))
    else:
        run.execute(stages.plan(spec))
        world.force("other/run", "rolled_back", 100, 0)
    plan = Plan.from_dict(run.xcom("plan"))
    before = world.snapshot()
    probe = Probe(503)
    assert report_live_health(Route53Hook(), CloudWatchMetricsHook(), plan, run.owner, probe=probe) is None
    assert probe.asked == []
    assert world.snapshot() == before


def test_the_rollback_task_reports_an_unhealthy_live_slot_in_its_result(world, new_run, stages, task_states,
                                                                         monkeypatch):  # fmt: skip
    from bluegreen_provider.triggers import health as health_trigger

    monkeypatch.setattr(health_trigger, "probe_once", Probe(503))
    run = new_run("run1")
    stages.release(run, spec_with_health(world), upto=(10, 50))
    task_states.update({"soak_50": "failed"})

    result = run.execute(stages.rollback())

    warning = f"live slot blue is unhealthy too: its health URL {BLUE_HEALTH}: 3 of last 3 probes returned 503"
    assert result["action"] == "rolled_back" and result["split_now"] == {"blue": 100, "green": 0}, result
    assert result["warnings"] == [warning]
    assert result["reason"] == f"rollback task after soak_50; {warning}"
    assert result["live_health"]["healthy"] is False and result["live_health"]["warning"] == warning
    assert world.state().reason == f"rollback task after soak_50; {warning}"

    again = run.execute(stages.rollback())  # cleared and re-run: says it again, writes it once
    assert again["action"] == "nothing" and again["warnings"] == [warning], again
    assert world.state().reason.count(warning) == 1


def test_the_rollback_task_with_a_healthy_live_slot_says_nothing_more(world, new_run, stages, task_states,
                                                                       monkeypatch):  # fmt: skip
    from bluegreen_provider.triggers import health as health_trigger

    monkeypatch.setattr(health_trigger, "probe_once", Probe(200))
    run = new_run("run1")
    stages.release(run, spec_with_health(world), upto=(10,))
    task_states.update({"soak_10": "failed"})
    result = run.execute(stages.rollback())
    assert result["reason"] == "rollback task after soak_10" and "warnings" not in result, result
    assert result["live_health"] == {
        "slot": "blue",
        "healthy": True,
        "problems": [],
        "checked": [f"health URL {BLUE_HEALTH}", "error rate over the last 300 s"],
        "unread": [],
        "warning": None,
    }
    assert world.state().reason == "rollback task after soak_10"


# -- the state transition ----------------------------------------------------------------------------


def test_a_warning_is_added_once_and_only_to_this_run_s_rolled_back_deployment(world, new_run, stages):
    run = new_run("run1")
    rolled_back(world, run, stages, world.spec())
    state = record_warning(world.service(), run.owner, "live slot blue is unhealthy too:\n  its /health 503")
    assert state.reason == "soak_10 failed: error rate; live slot blue is unhealthy too: its /health 503"
    assert world.state() == state and world.split() == {"blue": 100, "green": 0}

    before = world.snapshot()
    with pytest.raises(NothingToDo, match="already says so"):
        record_warning(world.service(), run.owner, "live slot blue is unhealthy too: its /health 503")
    with pytest.raises(NothingToDo, match=r"run bluegreen_deploy/run1 \(rolled_back, .*\) owns lego-api now"):
        record_warning(world.service(), "bluegreen_deploy/run0", "live slot blue is unhealthy too: x")
    with pytest.raises(ValueError, match="non-empty text"):
        record_warning(world.service(), run.owner, "  ")
    assert world.snapshot() == before

    long = record_warning(world.service(), run.owner, "x" * 1000)
    assert long.reason == f"{state.reason}; {'x' * 300}"


@pytest.mark.parametrize("phase", ["shifting", "held", "retained", "promoted"])
def test_a_warning_is_refused_while_the_deployment_is_not_rolled_back(world, new_run, stages, phase):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10,))
    world.force(run.owner, phase, 90, 10)
    before = world.snapshot()
    with pytest.raises(NothingToDo, match=f"lego-api is {phase} at blue 90 / green 10"):
        record_warning(world.service(), run.owner, "live slot blue is unhealthy too: x")
    assert world.snapshot() == before


def test_a_warning_is_refused_on_an_aborted_state_whose_split_is_not_restored(world, new_run, stages):
    run = new_run("run1")
    rolled_back(world, run, stages, world.spec())
    world.force(run.owner, "aborted", 100, 0)
    assert record_warning(world.service(), run.owner, "live slot blue is unhealthy too: x").phase == Phase.ABORTED
    world.force(run.owner, "rolled_back", 50, 50)
    with pytest.raises(NothingToDo, match="rolled_back at blue 50 / green 50"):
        record_warning(world.service(), run.owner, "live slot blue is unhealthy too: y")

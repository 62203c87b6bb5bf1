"""HealthCheckOperator and HealthProbeTrigger: Route53 check created once, HTTP probe against a local server."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bluegreen_provider.hooks.route53 import HealthCheckStatus, Route53Hook
from bluegreen_provider.operators.health import HealthCheckOperator, caller_reference
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import DeploymentState, ServiceState, acquire, decode_txt, record_release, shift
from bluegreen_provider.triggers.health import HealthProbeTrigger, describe_failures

from .conftest import FUNCTIONS, RECORD, first_event, make_context, make_plan, make_spec

GREEN_FQDN = "production-green.execute-api.us-east-1.amazonaws.com"
OWNER = "blue_green_deploy/manual__1"  # make_context's run
RELEASE = {fn: "1" for fn in FUNCTIONS}


def planned(world, spec: DeploymentSpec, owner: str = OWNER) -> ServiceState:
    """The run's plan and deploy, as the stages before the health check leave the deployment state."""
    svc = ServiceState(Route53Hook(aws_conn_id=None), world.zone_id, spec)
    acquire(svc, owner, live_versions=RELEASE, run_is_active=lambda _: False)
    record_release(svc, owner, RELEASE)
    return svc


def state(world) -> DeploymentState:
    records = world.route53.list_resource_record_sets(HostedZoneId=world.zone_id)["ResourceRecordSets"]
    txt = next(r for r in records if r["Type"] == "TXT")
    return DeploymentState.from_json(decode_txt(" ".join(v["Value"] for v in txt["ResourceRecords"])))


def health_spec(url: str | None, **health):
    green = {"set_identifier": "green", "alias": "production-green", "health_check_fqdn": GREEN_FQDN}
    if url:
        green["health_url"] = url
    return make_spec(
        slots={"blue": {"set_identifier": "blue", "alias": "production-blue"}, "green": green},
        health={"consecutive_successes": 3, "deadline_seconds": 4, "probe_interval_seconds": 0.2, **health},
    )


def operator() -> HealthCheckOperator:
    return HealthCheckOperator(task_id="health_check", aws_conn_id=None, request_timeout_seconds=2)


def run(op: HealthCheckOperator, context) -> dict:
    """execute -> TaskDeferred -> the real trigger -> execute_complete, as the worker and triggerer would."""
    with pytest.raises(TaskDeferred) as exc:
        op.execute(context)
    assert isinstance(exc.value.trigger, HealthProbeTrigger)
    return op.execute_complete(context, first_event(exc.value.trigger, timeout=20), **exc.value.kwargs)


def test_healthy_candidate_passes_and_its_check_is_recorded_but_on_no_record(world, http_server):
    spec = health_spec(http_server.url)
    planned(world, spec)
    context = make_context(make_plan(world, spec))
    result = run(operator(), context)
    check_id = result["route53_health_check_id"]
    assert result["route53_status"] == "healthy"
    assert result["probe"]["url"] == http_server.url
    assert (result["probe"]["attempts"], result["probe"]["successes"], result["probe"]["last_status"]) == (3, 3, 200)
    assert state(world).health_checks == {"green": check_id}
    sets = world.sets()  # at weight 0 a check would let Route53 fail over to the unvetted candidate
    assert "HealthCheckId" not in sets["green"] and "HealthCheckId" not in sets["blue"]
    config = world.route53.get_health_check(HealthCheckId=check_id)["HealthCheck"]["HealthCheckConfig"]
    assert (config["Type"], config["ResourcePath"], config["Port"]) == ("HTTPS", "/health", 443)
    assert (config["RequestInterval"], config["FailureThreshold"]) == (30, 3)
    assert config["FullyQualifiedDomainName"] == GREEN_FQDN
    assert world.weights() == {"blue": 100, "green": 0}


def test_the_first_canary_step_attaches_the_recorded_check(world, http_server):
    spec = health_spec(http_server.url)
    svc = planned(world, spec)
    check_id = run(operator(), make_context(make_plan(world, spec)))["route53_health_check_id"]
    shift(svc, OWNER, 10, previous_pct=0, serving=RELEASE)
    sets = world.sets()
    assert (sets["green"]["Weight"], sets["green"].get("HealthCheckId")) == (10, check_id)
    assert "HealthCheckId" not in sets["blue"]


def test_rerun_reuses_the_route53_health_check(world, http_server):
    spec = health_spec(http_server.url)
    planned(world, spec)
    context = make_context(make_plan(world, spec))
    first = run(operator(), context)
    generation = state(world).generation
    second = run(operator(), context)
    checks = world.route53.list_health_checks()["HealthChecks"]
    assert len(checks) == 1
    assert first["route53_health_check_id"] == second["route53_health_check_id"] == checks[0]["Id"]
    owner = f"{context['dag_run'].dag_id}/{context['dag_run'].run_id}"
    assert checks[0]["CallerReference"] == caller_reference(RECORD, "green", GREEN_FQDN, owner)
    assert state(world).health_checks == {"green": checks[0]["Id"]}
    assert state(world).generation == generation  # nothing to record again


def test_a_run_that_does_not_own_the_service_records_nothing(world, http_server):
    spec = health_spec(http_server.url)
    planned(world, spec, owner="blue_green_deploy/manual__0")
    before = state(world)
    with pytest.raises(AirflowFailException, match=r"^health_check: run blue_green_deploy/manual__0 .* owns lego-api"):
        operator().execute(make_context(make_plan(world, spec)))
    assert state(world) == before and http_server.hits == []


def test_failing_probe_fails_and_leaves_traffic_untouched(world, http_server):
    http_server.codes = [200, 503]
    spec = health_spec(http_server.url, deadline_seconds=2)
    planned(world, spec)
    context = make_context(make_plan(world, spec))
    with pytest.raises(AirflowFailException) as exc:
        run(operator(), context)
    message = str(exc.value)
    assert message.startswith("health probe of green failed: 5 of last 5 probes returned 503; needed 3 consecutive")
    assert "best run was 1" in message
    assert message.endswith(f"({http_server.url}); traffic untouched (blue 100 / green 0)")
    assert world.weights() == {"blue": 100, "green": 0}


def test_probe_recovers_after_a_cold_start(world, http_server):
    http_server.codes = [503, 503, 200]
    spec = health_spec(http_server.url)
    planned(world, spec)
    result = run(operator(), make_context(make_plan(world, spec)))
    assert result["probe"]["attempts"] == 5 and result["probe"]["successes"] == 3


def test_unhealthy_route53_check_fails_before_probing(world, http_server):
    bad = HealthCheckStatus("x", healthy=False, checkers=3, failing=3, detail="us-east-1: Failure: HTTP 503")
    spec = health_spec(http_server.url)
    planned(world, spec)
    with (
        mock.patch.object(Route53Hook, "health_check_status", return_value=bad),
        pytest.raises(AirflowFailException) as exc,
    ):
        operator().execute(make_context(make_plan(world, spec)))
    assert "unhealthy: us-east-1: Failure: HTTP 503; traffic untouched (blue 100 / green 0)" in str(exc.value)
    assert http_server.hits == []


def test_missing_health_url_skips_the_probe_with_a_warning(world):
    spec = health_spec(None)
    planned(world, spec)
    result = operator().execute(make_context(make_plan(world, spec)))
    assert result["probe"] == {"url": None, "skipped": "slots.green.health_url is not set: HTTP probe skipped"}
    assert result["warnings"] == [result["probe"]["skipped"]]
    assert result["route53_status"] == "healthy"


def test_route53_check_without_any_endpoint_is_refused_before_any_change(world):
    spec = make_spec(health={"route53_check": True})  # no fqdn, no url on green
    with pytest.raises(AirflowFailException, match="neither health_check_fqdn nor health_url"):
        operator().execute(make_context(make_plan(world, spec)))
    assert world.route53.list_health_checks()["HealthChecks"] == []


def test_probe_of_a_closed_port_reports_the_network_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    now = datetime.now(UTC)
    event = first_event(
        HealthProbeTrigger(
            url=f"http://127.0.0.1:{port}/health",
            consecutive_successes=1,
            started_at=now.isoformat(),
            deadline_at=(now + timedelta(seconds=1)).isoformat(),
            interval_seconds=0.3,
            request_timeout_seconds=1,
        )
    )
    assert event["status"] == "failure" and event["last_status"] is None
    assert "ConnectionRefusedError" in event["message"]


def test_describe_failures_mixes_codes():
    recent = [{"status": 503, "error": None}, {"status": None, "error": "timeout"}, {"status": 200, "error": None}]
    assert describe_failures(recent) == "2 of last 3 probes returned 503 (1), timeout (1)"


def test_probe_trigger_serializes_its_absolute_deadline():
    trigger = HealthProbeTrigger(
        url="https://green.example/health",
        consecutive_successes=3,
        started_at="2026-11-26T12:00:00+00:00",
        deadline_at="2026-11-26T12:02:00+00:00",
        interval_seconds=2.0,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "bluegreen_provider.triggers.health.HealthProbeTrigger"
    assert HealthProbeTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs["deadline_at"] == "2026-11-26T12:02:00+00:00"


def test_next_deployment_replaces_its_predecessors_check_but_never_a_persons(world, http_server):
    from types import SimpleNamespace

    spec = health_spec(http_server.url)
    plan = make_plan(world, spec)

    def next_run(run_id: str) -> dict:
        """A later run of the same DAG that took over the (clean) service, then reached its health stage."""
        planned(world, spec, owner=f"blue_green_deploy/{run_id}")
        context = make_context(plan)
        context["dag_run"] = SimpleNamespace(dag_id="blue_green_deploy", run_id=run_id)
        return run(operator(), context)

    planned(world, spec)
    first = run(operator(), make_context(plan))
    second = next_run("manual__2")
    ids = [c["Id"] for c in world.route53.list_health_checks()["HealthChecks"]]
    assert ids == [second["route53_health_check_id"]] != [first["route53_health_check_id"]]
    assert state(world).health_checks == {"green": second["route53_health_check_id"]}

    persons = world.route53.create_health_check(
        CallerReference="ops-team-check",
        HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": GREEN_FQDN, "ResourcePath": "/ping"},
    )["HealthCheck"]["Id"]
    world.route53.change_resource_record_sets(
        HostedZoneId=world.zone_id,
        ChangeBatch={
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {**world.sets()["green"], "HealthCheckId": persons}}]
        },
    )
    third = next_run("manual__3")
    remaining = {c["Id"] for c in world.route53.list_health_checks()["HealthChecks"]}
    assert remaining == {persons, third["route53_health_check_id"]}, "a health check someone else created stays"
    assert "HealthCheckId" not in world.sets()["green"]  # but never on a set at weight 0

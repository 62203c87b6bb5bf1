"""The fault proxy live, in front of the sandbox's moto: what a client sees for each kind of fault, that
only the deployment's connection goes through it, and that the hooks' retries ride faults out —
including a change batch whose answer is lost after it applied."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.sandbox import Sandbox
from bluegreen_provider.sandbox.faults import FaultPlan, FaultProxy
from bluegreen_provider.sandbox.world import weighted_record
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import ServiceState, acquire, record_release

CONN_ID = "sandbox_faults"
V1 = {f"lego-api-{n}": "1" for n in ("moc", "gallery", "wishlist", "profile")}


@pytest.fixture
def proxy(sandbox: Sandbox) -> Iterator[Callable[..., FaultProxy]]:
    """Start a fault proxy in front of this sandbox's moto with a given plan."""
    started: list[FaultProxy] = []

    def start(**plan) -> FaultProxy:
        started.append(FaultProxy(sandbox.endpoint_url, FaultPlan(**plan)).start())
        return started[-1]

    yield start
    for running in started:
        running.stop()


def client(service: str, url: str, attempts: int = 1):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def use_connection(monkeypatch, url: str) -> str:
    conn = {"conn_type": "aws", "login": "testing", "password": "testing"}
    conn["extra"] = {"endpoint_url": url, "region_name": "us-east-1"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return CONN_ID


def lego_service(sandbox: Sandbox, conn_id: str) -> ServiceState:
    spec = DeploymentSpec.from_dict(
        {
            "service": "lego-api",
            "hosted_zone": "lego-mocs.com",
            "record_name": "api.lego-mocs.com",
            "functions": [{"name": fn, "version": "1"} for fn in V1],
        }
    )
    return ServiceState(Route53Hook(aws_conn_id=conn_id), sandbox.hosted_zone_id, spec)


@pytest.mark.parametrize(
    ("service", "call", "code", "status"),
    [
        ("route53", lambda c, sb: c.get_hosted_zone(Id=sb.hosted_zone_id), "Throttling", 400),
        ("lambda", lambda c, sb: c.get_alias(FunctionName="lego-api-moc", Name="production-blue"),
         "TooManyRequestsException", 429),
        ("cloudwatch", lambda c, sb: c.describe_alarms(), "ThrottlingException", 400),
    ],
)  # fmt: skip
def test_throttling_as_each_service_answers_it(sandbox, proxy, service, call, code, status) -> None:
    faulty = proxy(share=1.0, kinds=("throttle",))
    with pytest.raises(ClientError) as info:
        call(client(service, faulty.url), sandbox)
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    call(client(service, sandbox.endpoint_url), sandbox)  # moto itself answers


def test_unavailable_is_503(sandbox, proxy) -> None:
    faulty = proxy(share=1.0, kinds=("unavailable",))
    with pytest.raises(ClientError) as info:
        client("route53", faulty.url).get_hosted_zone(Id=sandbox.hosted_zone_id)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503


def _green_to(weight: int) -> dict:
    return {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": weighted_record("green", weight)}]}


def test_a_dropped_connection_before_forwarding_applies_nothing(sandbox, proxy) -> None:
    faulty = proxy(share=1.0, kinds=("drop",))
    changes = len(sandbox.route53_changes())
    with pytest.raises(ConnectionClosedError):
        client("route53", faulty.url).change_resource_record_sets(
            HostedZoneId=sandbox.hosted_zone_id, ChangeBatch=_green_to(7)
        )
    assert len(sandbox.route53_changes()) == changes
    assert sandbox.weights()["green"] == 0


def test_a_dropped_answer_after_forwarding_applied_the_change(sandbox, proxy) -> None:
    faulty = proxy(share=1.0, kinds=("drop_applied",))
    changes = len(sandbox.route53_changes())
    with pytest.raises(ConnectionClosedError):
        client("route53", faulty.url).change_resource_record_sets(
            HostedZoneId=sandbox.hosted_zone_id, ChangeBatch=_green_to(7)
        )
    assert len(sandbox.route53_changes()) == changes + 1
    assert sandbox.weights()["green"] == 7


def test_a_slow_answer_arrives_late_and_whole(sandbox, proxy) -> None:
    faulty = proxy(share=1.0, kinds=("slow",), slow_seconds=0.5)
    began = time.monotonic()
    zone = client("route53", faulty.url).get_hosted_zone(Id=sandbox.hosted_zone_id)
    assert time.monotonic() - began >= 0.5
    assert zone["HostedZone"]["Id"].endswith(sandbox.hosted_zone_id)


def test_hooks_ride_out_a_third_of_their_calls_failing(sandbox, proxy, monkeypatch) -> None:
    faulty = proxy(share=0.33, seed=5, slow_seconds=0.05)
    conn_id = use_connection(monkeypatch, faulty.url)
    route53, lambdas = Route53Hook(aws_conn_id=conn_id), LambdaAliasHook(aws_conn_id=conn_id)
    for _ in range(25):
        assert route53.get_split(sandbox.hosted_zone_id, "api.lego-mocs.com", "A", ["blue", "green"]) == {
            "blue": 100,
            "green": 0,
        }
        assert lambdas.get_alias("lego-api-moc", "production-blue").version == "1"
    counts = faulty.counts()
    assert counts["faults"] >= 10, counts
    assert set(counts["by_service"]) == {"route53", "lambda"}, counts
    # botocore's retries, as the proxy saw them: every fault but a slow answer was followed by another attempt
    assert sum(counts["attempts"].values()) == counts["requests"]
    assert counts["requests"] - counts["attempts"][1] == counts["faults"] - counts["by_kind"].get("slow", 0)


def test_a_transition_whose_answer_was_dropped_after_it_applied_lands_once(sandbox, proxy, monkeypatch) -> None:
    faulty = proxy(share=1.0, kinds=("drop_applied",), operations=("ChangeResourceRecordSets",), limit=1)
    svc = lego_service(sandbox, use_connection(monkeypatch, faulty.url))
    before = len(sandbox.route53_changes())

    state, _ = acquire(svc, "deploy/run1", live_versions=V1, run_is_active=lambda owner: False)

    assert [(f.operation, f.kind) for f in faulty.injected()] == [("ChangeResourceRecordSets", "drop_applied")]
    assert svc.read().state == state and state.generation == 1
    changes = sandbox.route53_changes()[before:]
    # the batch (its answer lost) and the confirmation; botocore's repeat was refused and left no trace
    assert [c["comment"].split(": ", 1)[1].split(" (")[0] for c in changes] == ["plan", "plan landed, answer lost"]


def test_transitions_back_to_back_ride_out_prior_request_not_complete(aws_sandbox, monkeypatch) -> None:
    # 3 s outlasts botocore's default 3 attempts (at most 1 + 2 s of backoff); the hook's 10 do not give up.
    sandbox = aws_sandbox(prior_request_seconds=3.0, propagation_seconds=0)
    svc = lego_service(sandbox, use_connection(monkeypatch, sandbox.aws_endpoint_url))
    v2 = {fn: "2" for fn in V1}
    acquire(svc, "deploy/run1", live_versions=V1, run_is_active=lambda owner: False)
    record_release(svc, "deploy/run1", v2)  # submitted well within 3 s of the plan's change
    state = svc.read().state
    assert (state.generation, state.phase, state.versions[state.candidate]) == (2, "planned", v2)
    assert sandbox.status()["throttling"]["prior_request_not_complete"] >= 1


def test_only_the_deployment_connection_goes_through_the_proxy(tmp_path) -> None:
    with Sandbox(rate_per_second=200, flush_seconds=0.5, state_dir=tmp_path / "sb", faults=0.5) as sandbox:
        sandbox.wait_for_flushes(3)  # traffic routed, metrics published, alarms judged: all direct
        assert sandbox.fault_counts()["requests"] == 0
        extra = json.loads(sandbox.connection_json())["extra"]
        assert extra["endpoint_url"] == sandbox.aws_endpoint_url != sandbox.endpoint_url
        assert sandbox.status()["faults"]["requests"] == 0
        client("route53", sandbox.aws_endpoint_url, attempts=10).get_hosted_zone(Id=sandbox.hosted_zone_id)
        assert sandbox.fault_counts()["requests"] >= 1
    with Sandbox(state_dir=tmp_path / "plain") as plain:
        assert plain.aws_endpoint_url == plain.endpoint_url and plain.fault_counts() is None


def test_a_health_check_created_while_its_answer_was_lost_is_created_once(sandbox, proxy, monkeypatch) -> None:
    faulty = proxy(share=1.0, kinds=("drop_applied",), operations=("CreateHealthCheck",), limit=1)
    route53 = Route53Hook(aws_conn_id=use_connection(monkeypatch, faulty.url))

    check_id = route53.ensure_health_check(caller_reference="bluegreen-green-retry", fqdn="green.example.com")

    assert [f.operation for f in faulty.injected()] == ["CreateHealthCheck"]
    direct = client("route53", sandbox.endpoint_url)
    ours = [c for c in direct.list_health_checks()["HealthChecks"] if c["CallerReference"] == "bluegreen-green-retry"]
    assert [c["Id"] for c in ours] == [check_id]  # botocore's repeat was answered with the same check
    config = dict(ours[0]["HealthCheckConfig"], FullyQualifiedDomainName="other.example.com")
    with pytest.raises(ClientError) as info:
        direct.create_health_check(CallerReference="bluegreen-green-retry", HealthCheckConfig=config)
    assert info.value.response["Error"]["Code"] == "HealthCheckAlreadyExists"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_a_gate_holds_the_next_call_before_moto_until_released(sandbox: Sandbox, proxy) -> None:
    through = proxy(share=0.0)
    gate = through.hold("lambda", "UpdateAlias")
    lam = client("lambda", through.url)
    answers: list[dict] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            lam.update_alias(FunctionName="lego-api-moc", Name="production-blue", Description="held")
        )
    )
    caller.start()
    assert gate.wait_reached(10)
    direct = client("lambda", sandbox.endpoint_url)
    assert direct.get_alias(FunctionName="lego-api-moc", Name="production-blue").get("Description") != "held"
    assert lam.get_alias(FunctionName="lego-api-moc", Name="production-blue")  # other calls pass meanwhile
    gate.release()
    caller.join(10)
    assert answers and answers[0]["Description"] == "held"
    assert direct.get_alias(FunctionName="lego-api-moc", Name="production-blue")["Description"] == "held"
    second = lam.update_alias(FunctionName="lego-api-moc", Name="production-blue", Description="again")
    assert second["Description"] == "again"  # a gate holds one call only


def test_a_gate_after_apply_holds_the_answer_of_a_change_that_landed(sandbox: Sandbox, proxy) -> None:
    through = proxy(share=0.0)
    gate = through.hold("lambda", "UpdateAlias", after_apply=True)
    lam = client("lambda", through.url)
    caller = threading.Thread(
        target=lambda: lam.update_alias(FunctionName="lego-api-moc", Name="production-blue", Description="landed"),
        daemon=True,
    )
    caller.start()
    assert gate.wait_reached(10)
    direct = client("lambda", sandbox.endpoint_url)
    assert direct.get_alias(FunctionName="lego-api-moc", Name="production-blue")["Description"] == "landed"
    assert caller.is_alive()  # its caller still waits for the answer
    gate.release()
    caller.join(10)
    assert not caller.is_alive()

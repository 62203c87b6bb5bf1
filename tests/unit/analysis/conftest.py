"""Fixtures for the canary-analysis and health tests: a moto world with blue/green weighted sets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bluegreen_provider.plan import Plan
from bluegreen_provider.sandbox import route53_rules
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import DeploymentState, decode_txt

REGION = "us-east-1"
ZONE = "lego-mocs.com"
RECORD = "api.lego-mocs.com"
FUNCTIONS = ("lego-api-moc", "lego-api-gallery")
GREEN_ALIAS = "production-green"
BLUE_ALIAS = "production-blue"
ALARM = "lego-api-gateway-5xx-errors"
OWNER = "blue_green_deploy/manual__1"
STATE_NAME = "_bluegreen.api.lego-mocs.com."


class FakeTI:
    """Just enough of a task instance: ``xcom_pull`` hands back the run's plan and other tasks' results."""

    def __init__(self, plan: dict[str, Any], xcoms: dict[str, Any] | None = None, try_number: int = 1) -> None:
        self.plan = plan
        self.xcoms = dict(xcoms or {})
        self.try_number = try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str | None = None, **_: Any) -> Any:
        return self.plan if task_ids == "plan" else self.xcoms.get(task_ids)


class World:
    """The story's record in moto plus helpers to read it back and feed CloudWatch."""

    def __init__(self) -> None:
        self.route53 = boto3.client("route53", region_name=REGION)
        self.cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        zone = self.route53.create_hosted_zone(Name=ZONE, CallerReference="analysis-tests")
        self.zone_id = zone["HostedZone"]["Id"].split("/")[-1]
        self.set_weights({"blue": 100, "green": 0}, action="CREATE")
        self.cloudwatch.put_metric_alarm(
            AlarmName=ALARM,
            Namespace="AWS/ApiGateway",
            MetricName="5XXError",
            Dimensions=[{"Name": "ApiName", "Value": "lego-api"}],
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=5,
            ComparisonOperator="GreaterThanThreshold",
        )

    def set_weights(self, weights: dict[str, int], action: str = "UPSERT") -> str:
        """Change the weights in one batch; returns Route53's change id."""
        changes = []
        for i, (slot, weight) in enumerate(weights.items()):
            record = {
                "Name": RECORD,
                "Type": "A",
                "SetIdentifier": slot,
                "Weight": weight,
                "TTL": 60,
                "ResourceRecords": [{"Value": f"10.0.0.{i + 1}"}],
            }
            if action == "UPSERT" and (hc := self.sets().get(slot, {}).get("HealthCheckId")):
                record["HealthCheckId"] = hc
            changes.append({"Action": action, "ResourceRecordSet": record})
        answer = self.route53.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": changes})
        return answer["ChangeInfo"]["Id"].split("/")[-1]

    def change_status(self, change_id: str) -> str:
        """What Route53 says of a change now: PENDING or INSYNC."""
        return self.route53.get_change(Id=change_id)["ChangeInfo"]["Status"]

    def sets(self) -> dict[str, dict[str, Any]]:
        records = self.route53.list_resource_record_sets(HostedZoneId=self.zone_id)["ResourceRecordSets"]
        return {r["SetIdentifier"]: r for r in records if r.get("SetIdentifier")}

    def weights(self) -> dict[str, int]:
        return {k: v["Weight"] for k, v in self.sets().items()}

    def put_traffic(
        self,
        requests: int,
        errors: int,
        alias: str = GREEN_ALIAS,
        seconds_ago: float = 0,
        at: datetime | None = None,
    ) -> datetime:
        """Invocations and errors of the alias, split over the functions, at 1 s resolution.

        Stamped now, ``seconds_ago`` in the past, or ``at`` (CloudWatch, and moto, count a datapoint
        only once its second is over). A past stamp is how CloudWatch delivers late: the datapoint
        belongs to its own time, but nobody could read it until it was published.
        """
        now = at or datetime.now(UTC) - timedelta(seconds=seconds_ago)
        data = []
        # The first function takes the odd request and every error: the rate is judged across all of them.
        shares = [(requests - requests // 2, errors), (requests // 2, 0)]
        for fn, share in zip(FUNCTIONS, shares, strict=True):
            dims = [{"Name": "FunctionName", "Value": fn}, {"Name": "Resource", "Value": f"{fn}:{alias}"}]
            for name, value in zip(("Invocations", "Errors"), share, strict=True):
                data.append(
                    {"MetricName": name, "Dimensions": dims, "Timestamp": now, "Value": value, "StorageResolution": 1}
                )
        self.cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)
        return now

    def set_alarm(self, state: str, reason: str) -> None:
        self.cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue=state, StateReason=reason)

    def alarm_since(self) -> datetime:
        """When the alarm entered its current state, as CloudWatch reports it."""
        alarm = self.cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]
        return alarm.get("StateTransitionedTimestamp") or alarm["StateUpdatedTimestamp"]

    def state(self) -> DeploymentState | None:
        """The deployment state record, decoded from the TXT record moto holds."""
        records = self.route53.list_resource_record_sets(HostedZoneId=self.zone_id)["ResourceRecordSets"]
        found = [r for r in records if r["Type"] == "TXT" and r["Name"].lower() == STATE_NAME]
        if not found:
            return None
        return DeploymentState.from_json(decode_txt(" ".join(v["Value"] for v in found[0]["ResourceRecords"])))

    def declare(self, spec: DeploymentSpec, split: dict[str, int], owner: str = OWNER) -> DeploymentState:
        """Write a shifting deployment owned by ``owner`` at ``split``: state and weights in one swap."""
        from bluegreen_provider.hooks.route53 import Route53Hook
        from bluegreen_provider.state import Phase, ServiceState

        def decide(_: Any) -> DeploymentState:
            return DeploymentState(
                service=spec.service,
                generation=0,
                phase=Phase.SHIFTING,
                owner=owner,
                live="blue",
                candidate="green",
                split=dict(split),
                versions={"blue": {fn: "1" for fn in FUNCTIONS}, "green": {fn: "2" for fn in FUNCTIONS}},
                reason="test set-up",
            )

        return ServiceState(Route53Hook(aws_conn_id=None), self.zone_id, spec).transition(decide, what="set-up").state


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield World()


def make_spec(**overrides: Any) -> DeploymentSpec:
    raw: dict[str, Any] = {
        "service": "lego-api",
        "hosted_zone": ZONE,
        "record_name": RECORD,
        "functions": [{"name": fn, "version": "1"} for fn in FUNCTIONS],
        "slots": {
            "blue": {"set_identifier": "blue", "alias": "production-blue"},
            "green": {"set_identifier": "green", "alias": GREEN_ALIAS},
        },
        "steps": [{"weight": 10, "soak_seconds": 3}, {"weight": 50, "soak_seconds": 3}, {"weight": 100}],
        "poll_interval_seconds": 1,
        "metrics_period_seconds": 1,
        "metrics_lag_seconds": 0,  # a soak's verdict waits period + lag after its clock ends
        "alarms": [ALARM],
    }
    raw.update(overrides)
    return DeploymentSpec.from_dict(raw)


def make_plan(world: World, spec: DeploymentSpec | None = None, **fields: Any) -> dict[str, Any]:
    plan = Plan(
        spec=spec or make_spec(),
        zone_id=world.zone_id,
        live="blue",
        candidate="green",
        owner=OWNER,
        split_before={"blue": 100, "green": 0},
        live_versions={fn: "1" for fn in FUNCTIONS},
        candidate_versions_before={fn: "1" for fn in FUNCTIONS},
        created_at=fields.pop("created_at", datetime.now(UTC).isoformat()),
        **fields,
    )
    return plan.to_dict()


def make_context(plan: dict[str, Any], xcoms: dict[str, Any] | None = None, try_number: int = 1) -> dict[str, Any]:
    dag_id, _, run_id = OWNER.partition("/")
    return {"ti": FakeTI(plan, xcoms, try_number), "dag_run": SimpleNamespace(dag_id=dag_id, run_id=run_id)}


@pytest.fixture
def propagation() -> Iterator[Any]:
    """``propagation(seconds)``: Route53 changes submitted from now on stay PENDING that long (restored after)."""
    before = route53_rules.SETTINGS.propagation_seconds
    yield lambda seconds: route53_rules.configure(propagation_seconds=seconds)
    route53_rules.configure(propagation_seconds=before)


def first_event(trigger: Any, timeout: float = 60) -> dict[str, Any]:
    """Run a trigger until its first event and return the payload."""

    async def go() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    return asyncio.run(asyncio.wait_for(go(), timeout))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        codes = self.server.codes  # type: ignore[attr-defined]
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        code = codes.pop(0) if len(codes) > 1 else codes[0]
        body = b'{"status": "ok"}' if code < 300 else b'{"status": "down"}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[Any]:
    """A health endpoint on 127.0.0.1 answering the status codes in ``server.codes`` (last one repeats)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.codes = [200]  # type: ignore[attr-defined]
    server.hits = []  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}/health"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()

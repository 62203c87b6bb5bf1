"""A small moto world at the approval point: traffic split blue 50 / green 50, aliases on two versions."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import boto3
import pytest
from airflow.configuration import conf
from moto import mock_aws

from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.plan import Plan
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import DeploymentState, ServiceState, acquire, decode_txt, record_release, shift

REGION = "us-east-1"
SERVICE = "lego-api"
RECORD = "api.example.com"
FUNCTIONS = ("lego-moc", "lego-gallery")
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
DAGS = Path(__file__).parent / "dags"
ALARMS = ("lego-api-5xx", "lego-api-latency")


@dataclass
class World:
    zone_id: str
    spec: DeploymentSpec

    def plan(self, **spec_overrides) -> dict:
        """The plan dict the ``plan`` task stores in XCom (blue live, green candidate)."""
        spec = DeploymentSpec.from_dict({**self.spec.to_dict(), **spec_overrides})
        return Plan(
            spec=spec,
            zone_id=self.zone_id,
            live="blue",
            candidate="green",
            owner="bluegreen_deploy/manual__1",
            split_before={"blue": 100, "green": 0},
            live_versions={f: "1" for f in FUNCTIONS},
            candidate_versions_before={f: "1" for f in FUNCTIONS},
            alarms_firing=[{"name": "lego-api-latency", "state": "ALARM", "reason": "p99 > 2s"}],
            created_at="2026-11-26T12:00:00+00:00",
        ).to_dict()

    def split(self) -> dict[str, int]:
        """The weights Route53 holds now, by set identifier."""
        sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=self.zone_id)
        return {r["SetIdentifier"]: r["Weight"] for r in sets["ResourceRecordSets"] if r.get("SetIdentifier")}

    def state(self) -> DeploymentState | None:
        """The deployment state record read back with plain boto3 (None before any deployment)."""
        sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=self.zone_id)["ResourceRecordSets"]
        txt = [r for r in sets if r["Type"] == "TXT" and r["Name"].startswith("_bluegreen.")]
        if not txt:
            return None
        return DeploymentState.from_json(decode_txt(" ".join(v["Value"] for v in txt[0]["ResourceRecords"])))

    def deployed_to_50(self, owner: str) -> DeploymentState:
        """``owner`` takes the service and shifts green to 50 % through the stages' transitions.

        The split starts at blue 100 again first (no deployment state exists yet, so nothing disagrees).
        """
        assert self.state() is None
        boto3.client("route53").change_resource_record_sets(
            HostedZoneId=self.zone_id, ChangeBatch={"Changes": [_record("blue", 100), _record("green", 0)]}
        )
        svc = ServiceState(Route53Hook(aws_conn_id=None), self.zone_id, self.spec)
        acquire(svc, owner, live_versions={f: "1" for f in FUNCTIONS}, run_is_active=lambda _: True)
        green = {f: "2" for f in FUNCTIONS}
        record_release(svc, owner, green)
        shift(svc, owner, 10, previous_pct=0, serving=green)
        shift(svc, owner, 50, previous_pct=10, serving=green)
        state = self.state()
        assert (state.phase, state.owner, state.split) == ("shifting", owner, {"blue": 50, "green": 50})
        assert self.split() == {"blue": 50, "green": 50}
        return state


def _zip(body: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", body)
    return buf.getvalue()


def _record(slot: str, weight: int) -> dict:
    return {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": RECORD,
            "Type": "A",
            "SetIdentifier": slot,
            "Weight": weight,
            "TTL": 60,
            "ResourceRecords": [{"Value": "10.0.0.1" if slot == "blue" else "10.0.0.2"}],
        },
    }


@pytest.fixture
def world(monkeypatch) -> World:
    """moto with the zone, both weighted sets at 50, two functions (blue alias -> v1, green -> v2)."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        r53 = boto3.client("route53")
        zone_id = r53.create_hosted_zone(Name="example.com", CallerReference="approval-tests")["HostedZone"][
            "Id"
        ].rsplit("/", 1)[-1]
        r53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Changes": [_record("blue", 50), _record("green", 50)]}
        )
        role = boto3.client("iam").create_role(RoleName="lego", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = boto3.client("lambda", region_name=REGION)
        for fn in FUNCTIONS:
            lam.create_function(
                FunctionName=fn,
                Runtime="python3.12",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": _zip("def handler(e, c): return 1")},
                Publish=True,
            )
            lam.update_function_code(FunctionName=fn, ZipFile=_zip("def handler(e, c): return 2"))
            lam.publish_version(FunctionName=fn)
            lam.create_alias(FunctionName=fn, Name="production-blue", FunctionVersion="1")
            lam.create_alias(FunctionName=fn, Name="production-green", FunctionVersion="2")
        cw = boto3.client("cloudwatch", region_name=REGION)
        for name in ALARMS:
            cw.put_metric_alarm(
                AlarmName=name,
                MetricName="Errors",
                Namespace="AWS/Lambda",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanThreshold",
            )
        cw.set_alarm_state(AlarmName="lego-api-5xx", StateValue="ALARM", StateReason="5xx > 1")
        spec = DeploymentSpec.from_dict(
            {
                "service": SERVICE,
                "hosted_zone": "example.com",
                "record_name": RECORD,
                "functions": [{"name": fn, "version": "2"} for fn in FUNCTIONS],
                "alarms": list(ALARMS),
            }
        )
        yield World(zone_id=zone_id, spec=spec)


@pytest.fixture
def upsert():
    """The HITL request the gate would store (``upsert_hitl_detail``), captured instead of written."""
    with mock.patch("airflow.providers.standard.operators.hitl.upsert_hitl_detail") as m:
        yield m


@pytest.fixture(scope="module")
def gate_dag(airflow_db):
    """The test DAG, served from its own bundle (dag.test() runs only DAGs found in a bundle)."""
    bundles = json.loads(conf.get("dag_processor", "dag_bundle_config_list"))
    ours = {"name": "approval-gate-tests", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(DAGS)}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([ours, *bundles]))
        from .dags import approval_gate

        yield approval_gate.dag


@pytest.fixture(scope="module")
def api(airflow_db):
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    return TestClient(create_app())

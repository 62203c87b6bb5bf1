"""A moto world for the release and traffic stages, and a tiny stand-in for one DAG run.

The world: hosted zone ``lego-mocs.com`` with a weighted A-alias record ``api.lego-mocs.com`` (sets
blue=100, green=0), and two Lambda functions whose ``production-blue`` and ``production-green``
aliases both point at version 1 (release v1). Zips of the demo releases v1, v2 and bad are on disk.
Every assertion reads state back from moto with plain boto3, not through the code under test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
from moto import mock_aws

from bluegreen_provider.sandbox.releases import build_zip, code_sha256, handler_source
from bluegreen_provider.state import DeploymentState
from tests.unit.weighted_zone import create_weighted_zone, records, set_split, split_of, state_of, state_record_of

REGION = "us-east-1"
ZONE = "lego-mocs.com"
RECORD = "api.lego-mocs.com"
FUNCTIONS = ("lego-api-mocs", "lego-api-gallery")
DAG_ID = "bluegreen_deploy"


class FakeTI:
    """The slice of a task instance the stages use: XCom push/pull within one run's store."""

    map_index = -1

    def __init__(self, task_id: str, store: dict[tuple[str, str], Any]):
        self.task_id = task_id
        self.store = store

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        return self.store.get((task_ids or self.task_id, key))

    def xcom_push(self, key: str, value: Any) -> None:
        # Round-trip through JSON as the XCom backend does, so only JSON-able results pass.
        self.store[(self.task_id, key)] = json.loads(json.dumps(value))


class Run:
    """One DAG run: runs operators in order, storing each result as its XCom like Airflow would."""

    def __init__(self, run_id: str, dag_id: str = DAG_ID):
        self.run_id = run_id
        self.dag_id = dag_id
        self.store: dict[tuple[str, str], Any] = {}
        self.dag_run = SimpleNamespace(dag_id=dag_id, run_id=run_id)

    @property
    def owner(self) -> str:
        return f"{self.dag_id}/{self.run_id}"

    def context(self, task: Any, **extra: Any) -> dict[str, Any]:
        return {"ti": FakeTI(task.task_id, self.store), "task": task, "dag_run": self.dag_run, **extra}

    def execute(self, task: Any, **extra: Any) -> Any:
        result = task.execute(self.context(task, **extra))
        if result is not None:
            self.store[(task.task_id, "return_value")] = json.loads(json.dumps(result))
        return result

    def complete(self, task: Any, event: dict[str, Any], **kwargs: Any) -> Any:
        result = task.execute_complete(self.context(task), event, **kwargs)
        if result is not None:
            self.store[(task.task_id, "return_value")] = json.loads(json.dumps(result))
        return result

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.store.get((task_id, key))

    def put(self, task_id: str, value: Any, key: str = "return_value") -> None:
        self.store[(task_id, key)] = value


class World:
    """The moto account, read and changed with plain boto3."""

    def __init__(self, tmp: Path):
        self.route53 = boto3.client("route53")
        self.lam = boto3.client("lambda", region_name=REGION)
        self.cw = boto3.client("cloudwatch", region_name=REGION)
        self.functions = FUNCTIONS
        self.zips: dict[str, Path] = {}
        self.sha: dict[str, str] = {}
        for name in ("v1", "v2", "bad"):
            data = build_zip(handler_source(name))
            self.zips[name] = tmp / f"{name}.zip"
            self.zips[name].write_bytes(data)
            self.sha[name] = code_sha256(data)
        self.zone_id = create_weighted_zone(self.route53, ZONE, RECORD, caller_reference="world")
        role = boto3.client("iam").create_role(
            RoleName="lego-api",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        for fn in FUNCTIONS:
            self.lam.create_function(
                FunctionName=fn,
                Runtime="python3.12",
                Role=role,
                Handler="handler.handler",
                Code={"ZipFile": self.zips["v1"].read_bytes()},
                Publish=True,
            )
            for colour in ("blue", "green"):
                self.lam.create_alias(FunctionName=fn, Name=f"production-{colour}", FunctionVersion="1")

    # -- reading back -----------------------------------------------------------------------------
    def sets(self) -> dict[str, dict[str, Any]]:
        """The weighted sets of the record, by set identifier."""
        sets = self.records()
        return {r["SetIdentifier"]: r for r in sets if r["Name"].rstrip(".") == RECORD and "SetIdentifier" in r}

    def split(self) -> dict[str, int]:
        return split_of(self.records(), RECORD)

    def set_split(self, blue: int, green: int) -> None:
        """Change the weights by hand, outside bluegreen (the state record is left as it is)."""
        set_split(self.route53, self.zone_id, RECORD, blue=blue, green=green)

    def alias(self, fn: str, colour: str) -> str | None:
        try:
            return self.lam.get_alias(FunctionName=fn, Name=f"production-{colour}")["FunctionVersion"]
        except self.lam.exceptions.ResourceNotFoundException:
            return None

    def aliases(self, colour: str) -> dict[str, str | None]:
        return {fn: self.alias(fn, colour) for fn in self.functions}

    def versions(self, fn: str) -> dict[str, str]:
        out = self.lam.list_versions_by_function(FunctionName=fn)["Versions"]
        return {v["Version"]: v["CodeSha256"] for v in out if v["Version"] != "$LATEST"}

    def tags(self) -> dict[str, str]:
        tags = self.route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=self.zone_id)
        return {t["Key"]: t["Value"] for t in tags["ResourceTagSet"].get("Tags", [])}

    def records(self) -> list[dict[str, Any]]:
        """Every record set of the zone, as Route53 lists them."""
        return records(self.route53, self.zone_id)

    def state_record(self) -> dict[str, Any] | None:
        return state_record_of(self.records())

    def state(self) -> DeploymentState | None:
        """The deployment state record, decoded."""
        return state_of(self.records())

    def changes(self) -> int:
        """How many change batches Route53 has committed to this zone."""
        from bluegreen_provider.sandbox.route53_rules import CHANGES

        return len(CHANGES.zone(self.zone_id))

    def service(self, spec: dict[str, Any] | None = None):
        """The service's state, through a fresh hook (as another task would have)."""
        from bluegreen_provider.hooks.route53 import Route53Hook
        from bluegreen_provider.spec import DeploymentSpec
        from bluegreen_provider.state import ServiceState

        return ServiceState(Route53Hook(), self.zone_id, DeploymentSpec.from_dict(spec or self.spec()))

    def force(self, owner: str, phase: str, blue: int, green: int, **changes: Any) -> DeploymentState:
        """Set the weights AND the state record together, in one compare-and-swap transition.

        For a test that needs the service in a state no stage run reaches directly; the state always
        agrees with the split, so every guard sees a consistent world.
        """
        from dataclasses import replace

        from bluegreen_provider.state import Phase

        svc = self.service()

        def decide(snap):
            assert snap.state is not None, "force() changes an existing state; plan first"
            return replace(snap.state, owner=owner, phase=Phase(phase), split={"blue": blue, "green": green}, **changes)

        return svc.transition(decide, what="test set-up").state

    def snapshot(self) -> dict[str, Any]:
        """Everything the stages could change, to compare before/after."""
        return {
            "zone": self.records(),
            "tags": self.tags(),
            "aliases": {c: self.aliases(c) for c in ("blue", "green")},
            "versions": {fn: self.versions(fn) for fn in self.functions},
            "health_checks": self.route53.list_health_checks()["HealthChecks"],
        }

    def alarm(self, name: str, state: str = "OK") -> None:
        self.cw.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
        self.cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"test set {state}")

    # -- inputs -----------------------------------------------------------------------------------
    def spec(self, release: str = "v2", **overrides: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "service": "lego-api",
            "hosted_zone": ZONE,
            "record_name": RECORD,
            "functions": [{"name": fn, "zip_file": str(self.zips[release])} for fn in FUNCTIONS],
            "insync_timeout_seconds": 30,
        }
        spec.update(overrides)
        return spec


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield World(tmp_path)


@pytest.fixture
def new_run():
    """``new_run("run1")`` gives a fresh DAG run with its own XCom store."""
    return Run


class Stages:
    """Builds the stages with the task ids the DAG uses, and drives a run through them."""

    @staticmethod
    def plan(spec: Any, **kwargs: Any):
        from bluegreen_provider.operators.plan import PlanDeploymentOperator

        return PlanDeploymentOperator(task_id="plan", spec=spec, **kwargs)

    @staticmethod
    def deploy(**kwargs: Any):
        from bluegreen_provider.operators.deploy import DeployGreenOperator

        return DeployGreenOperator(task_id="deploy_green", **kwargs)

    @staticmethod
    def shift(pct: int, **kwargs: Any):
        from bluegreen_provider.operators.traffic import ShiftWeightOperator

        return ShiftWeightOperator(task_id=kwargs.pop("task_id", f"shift_{pct}"), candidate_pct=pct, **kwargs)

    @staticmethod
    def rollback(**kwargs: Any):
        from bluegreen_provider.operators.rollback import RollbackOperator

        return RollbackOperator(task_id="rollback", **kwargs)

    @staticmethod
    def teardown(**kwargs: Any):
        from bluegreen_provider.operators.teardown import TeardownBlueOperator

        return TeardownBlueOperator(task_id="teardown_blue", **kwargs)

    def release(self, run: Run, spec: dict[str, Any], upto: tuple[int, ...] = ()) -> dict[str, Any]:
        """plan → deploy_green → each shift in ``upto``; returns the plan XCom."""
        run.execute(self.plan(spec))
        run.execute(self.deploy())
        for pct in upto:
            run.execute(self.shift(pct))
        return run.xcom("plan")


@pytest.fixture
def stages() -> Stages:
    return Stages()


@pytest.fixture
def clock(monkeypatch):
    """``clock(seconds)`` moves the state's and the teardown's clock ahead, so a retention can end without waiting."""
    from datetime import datetime as real
    from datetime import timedelta

    import bluegreen_provider.operators.teardown as teardown_module
    import bluegreen_provider.state as state_module

    offset = [timedelta(0)]

    class Shifted(real):
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) + offset[0]

    for module in (state_module, teardown_module):
        monkeypatch.setattr(module, "datetime", Shifted)

    def advance(seconds: float) -> None:
        offset[0] += timedelta(seconds=seconds)

    return advance


@pytest.fixture
def task_states(monkeypatch):
    """What Airflow reports for this run's task instances, as ``get_task_states`` returns it."""
    states: dict[str, str] = {}

    def get_task_states(dag_id, map_index=None, task_ids=None, task_group_id=None, logical_dates=None, run_ids=None):
        return {run_ids[0]: dict(states)}

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
    return states

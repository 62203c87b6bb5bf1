"""One release across two regions, in real ``dag.test()`` runs of the factory's DAG on moto.

Each region has its own weighted record (and state record) in the service's zone, and its own Lambda
functions and CloudWatch metrics. A publisher thread plays the traffic: every alias of every function
in both regions gets requests each second; a bad release fails half of the candidate's requests in
one region only. Everything asserted is read back from moto with plain boto3.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bluegreen_provider.cli import main
from bluegreen_provider.sandbox.releases import build_zip, handler_source
from tests.unit.weighted_zone import create_weighted_zone, records, set_split, split_of, state_of

ZONE = "lego-mocs.com"
REGIONS = ("us-east-1", "eu-west-1")
FUNCTIONS = ("lego-api-mocs", "lego-api-gallery")
DAG_ID = "lego_api_regions"


def record_of(region: str) -> str:
    return f"api.{region}.{ZONE}"


class TwoRegions:
    """The zone with a record per region; in each region the functions with blue and green aliases on v1."""

    def __init__(self, tmp: Path) -> None:
        self.route53 = boto3.client("route53")
        self.zone_id = create_weighted_zone(self.route53, ZONE, record_of(REGIONS[0]), caller_reference="regions")
        set_split(self.route53, self.zone_id, record_of(REGIONS[1]), blue=100, green=0)
        self.zip = tmp / "v2.zip"
        self.zip.write_bytes(build_zip(handler_source("v2")))
        v1 = build_zip(handler_source("v1"))
        for region in REGIONS:
            role = boto3.client("iam", region_name=region).create_role(
                RoleName=f"lego-api-{region}", AssumeRolePolicyDocument="{}"
            )["Role"]["Arn"]
            lam = boto3.client("lambda", region_name=region)
            for fn in FUNCTIONS:
                lam.create_function(
                    FunctionName=fn,
                    Runtime="python3.12",
                    Role=role,
                    Handler="handler.handler",
                    Code={"ZipFile": v1},
                    Publish=True,
                )
                for colour in ("blue", "green"):
                    lam.create_alias(FunctionName=fn, Name=f"production-{colour}", FunctionVersion="1")
        self.failing: dict[str, float] = {}  # region -> share of the candidate's requests that fail

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {
            "service": "lego-api",
            "hosted_zone": ZONE,
            "record_name": record_of(REGIONS[0]),
            "functions": [{"name": fn, "zip_file": str(self.zip)} for fn in FUNCTIONS],
            "regions": [{"region_name": r, "record_name": record_of(r)} for r in REGIONS],
            "steps": [{"weight": 10, "soak_seconds": 3}, {"weight": 50, "soak_seconds": 3}, {"weight": 100}],
            "poll_interval_seconds": 1,
            "metrics_period_seconds": 1,
            "metrics_lag_seconds": 0,
            "min_requests": 10,
            "approval_mode": "auto",
            "retention_seconds": 1,
            "insync_timeout_seconds": 30,
            "health": {"route53_check": False, "deadline_seconds": 5},
            **overrides,
        }

    # -- reading back -------------------------------------------------------------------------------
    def split(self, region: str) -> dict[str, int]:
        return split_of(records(self.route53, self.zone_id), record_of(region))

    def state(self, region: str):
        sets = [r for r in records(self.route53, self.zone_id) if r["Name"].rstrip(".").endswith(record_of(region))]
        return state_of(sets)

    def candidate_versions(self, region: str) -> dict[str, str]:
        lam = boto3.client("lambda", region_name=region)
        return {fn: lam.get_alias(FunctionName=fn, Name="production-green")["FunctionVersion"] for fn in FUNCTIONS}

    # -- traffic ------------------------------------------------------------------------------------
    def publish(self, stop: threading.Event) -> None:
        """Each second: 40 requests per alias and function in each region; the candidate's may fail."""
        clients = {r: boto3.client("cloudwatch", region_name=r) for r in REGIONS}
        while not stop.wait(0.5):
            now = datetime.now(UTC)
            for region, cw in clients.items():
                data = []
                for fn in FUNCTIONS:
                    for colour in ("blue", "green"):
                        errors = 40 * self.failing.get(region, 0.0) if colour == "green" else 0.0
                        dims = [
                            {"Name": "FunctionName", "Value": fn},
                            {"Name": "Resource", "Value": f"{fn}:production-{colour}"},
                        ]
                        data += [
                            {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": now, "Value": 20.0},
                            {"MetricName": "Errors", "Dimensions": dims, "Timestamp": now, "Value": errors / 2},
                        ]
                cw.put_metric_data(Namespace="AWS/Lambda", MetricData=data)


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[TwoRegions]:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        world = TwoRegions(tmp_path)
        stop = threading.Event()
        publisher = threading.Thread(target=world.publish, args=(stop,), daemon=True)
        publisher.start()
        try:
            yield world
        finally:
            stop.set()
            publisher.join(timeout=5)


def run_dag(world: TwoRegions, tmp_path: Path, monkeypatch, **overrides: Any):
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path / "dags"
    folder.mkdir()
    config = json.dumps(world.config(**overrides))
    (folder / f"{DAG_ID}.py").write_text(
        "import json  # an airflow DAG file: the DagBag reads only files that say so\n"
        "from bluegreen_provider.dag_factory import deployment_dag\n"
        f"dag = deployment_dag({DAG_ID!r}, json.loads({config!r}), stage_retries=0)\n"
    )
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(folder))
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    started = time.monotonic()
    run = bag.get_dag(DAG_ID).test()
    print(f"{DAG_ID}: {time.monotonic() - started:.1f} s")
    return run.state, {ti.task_id: ti.state for ti in run.get_task_instances()}


def approval_request(dag_id: str = DAG_ID) -> dict[str, Any]:
    """What the approval recorded it asked about (its ``request`` XCom) in the latest run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel)
            .where(XComModel.dag_id == dag_id, XComModel.task_id == "approval", XComModel.key == "request")
            .order_by(XComModel.timestamp.desc())
        ).first()
        return XComModel.deserialize_value(row)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("rollout", ["lockstep", "waves"])
def test_both_regions_promote_through_every_step(regions, tmp_path, monkeypatch, capsys, rollout):
    state, tasks = run_dag(regions, tmp_path, monkeypatch, region_rollout=rollout)

    assert state == "success", tasks
    for region in REGIONS:
        for stage in ("plan", "deploy_green", "health_check", "shift_10", "soak_10", "shift_50", "soak_50"):
            assert tasks[f"{region}.{stage}"] == "success", (region, stage, tasks)
        assert tasks[f"{region}.shift_100"] == tasks[f"{region}.teardown_blue"] == "success", tasks
        assert regions.split(region) == {"blue": 0, "green": 100}, region
        assert regions.candidate_versions(region) == dict.fromkeys(FUNCTIONS, "2"), region
        deployment = regions.state(region)
        assert (deployment.phase, deployment.live, deployment.split) == ("retired", "green", regions.split(region))
    assert tasks["approval"] == "success"
    # The evidence names each region: its record, its split at 50 % and its candidate's versions.
    asked = approval_request()["regions"]
    assert {r: (a["record"], a["split"], a["candidate_versions"]) for r, a in asked.items()} == {
        r: (record_of(r), {"blue": 50, "green": 50}, dict.fromkeys(FUNCTIONS, "2")) for r in REGIONS
    }
    # `bluegreen status` reads each region in its own region: one block per region.
    assert main(["--dags-folder", str(tmp_path / "dags"), "status"]) == 0
    shown = capsys.readouterr().out
    for region in REGIONS:
        assert f"lego-api [{region}]  ({record_of(region)})" in shown, shown


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("rollout", ["lockstep", "waves"])
def test_a_breach_in_the_second_region_rolls_both_back(regions, tmp_path, monkeypatch, rollout):
    regions.failing[REGIONS[1]] = 0.5  # the release fails in eu-west-1 only (a regional dependency)
    state, tasks = run_dag(regions, tmp_path, monkeypatch, region_rollout=rollout)

    assert state == "failed", tasks
    assert tasks[f"{REGIONS[1]}.soak_10"] == "failed", tasks
    assert tasks["approval"] == "upstream_failed", tasks
    for region in REGIONS:
        assert tasks[f"{region}.rollback"] == "success", (region, tasks)
        assert regions.split(region) == {"blue": 100, "green": 0}, region
        deployment = regions.state(region)
        assert (deployment.phase, deployment.live, deployment.split) == ("rolled_back", "blue", regions.split(region))
        # Both were rolled back for the breach in the second region, the first one by its callback.
        assert deployment.reason.startswith(f"{REGIONS[1]}.soak_10 failed"), (region, deployment.reason)
    if rollout == "waves":
        # The first region soaked its 10 % clean before the second one took any traffic.
        assert tasks[f"{REGIONS[0]}.soak_10"] == "success", tasks

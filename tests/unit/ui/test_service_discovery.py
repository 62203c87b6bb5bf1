"""The overview finds services in the serialized DAGs of the metadata DB: it never runs a DAG file.

Each test writes its own DAG file and stores it as the DAG processor would (parsed here, in the
test). The file notes every time it is run in a marker file, so a view that ran it shows there; the
configured dags folder holds a file that fails and leaves a marker if anything imports it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bluegreen_provider.spec import DeploymentSpec

from .conftest import start_run, store_dags

SERVICE_FILE = """# An Airflow DAG file (the DAG processor's safe mode reads only files that say both words).
import pathlib
with pathlib.Path({marker!r}).open("a") as marker:
    marker.write("run\\n")

from bluegreen_provider.dag_factory import deployment_dag, rollback_dag

CONFIG = json.loads({config!r})
deploy = deployment_dag({deploy!r}, CONFIG{tags})
rollback = rollback_dag({rollback!r}, CONFIG)
"""

TRIPWIRE_FILE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
raise RuntimeError("a DAG file was run by the view")
"""


def _config(service: str) -> dict:
    return {
        "service": service,
        "hosted_zone": "ledger.example",
        "record_name": f"{service}.ledger.example",
        "functions": [{"name": f"{service}-fn", "version": "7"}, {"name": f"{service}-worker"}],
        "release": {"s3_bucket": "artifacts", "s3_prefix": "ledger/2.1/", "label": "2.1"},
        "alarms": [f"{service}-errors"],
        "error_rate_threshold_pct": 2.5,
        "steps": [{"weight": 25, "soak_seconds": 60}, {"weight": 100}],
    }


class ServiceDags:
    """A service's DAG file in a bundle folder of its own, with its marker."""

    def __init__(self, root: Path, *, custom_tags: bool = False) -> None:
        self.service = f"ledger-{uuid.uuid4().hex[:8]}"
        self.config = _config(self.service)
        self.deploy, self.rollback = (
            f"{self.service}_deploy".replace("-", "_"),
            f"{self.service}_rollback".replace("-", "_"),
        )
        self.folder = root / self.service
        self.folder.mkdir()
        self.marker = root / f"{self.service}.runs"
        source = SERVICE_FILE.format(
            marker=str(self.marker),
            config=json.dumps(self.config),
            deploy=self.deploy,
            rollback=self.rollback,
            tags=', tags=["team-payments"]' if custom_tags else "",
        )
        (self.folder / "ledger.py").write_text("import json\n" + source)

    def store(self) -> list[str]:
        return store_dags(self.folder, f"bluegreen-ui-{self.service}")

    @property
    def runs(self) -> int:
        return len(self.marker.read_text().splitlines()) if self.marker.exists() else 0


def _find(service: str):
    from airflow.utils.session import create_session

    from bluegreen_provider.ui.services import find_services

    with create_session() as session:
        return {s.name: s for s in find_services(session)}.get(service)


@pytest.fixture
def tripwire_dags_folder(tmp_path, monkeypatch) -> Path:
    """The configured dags folder: a file there leaves ``imported`` behind if anything runs it."""
    folder = tmp_path / "configured-dags"
    folder.mkdir()
    marker = tmp_path / "tripwire.imported"
    (folder / "tripwire.py").write_text(TRIPWIRE_FILE.format(marker=str(marker)))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    return marker


def test_a_service_is_found_with_the_config_its_dag_file_wrote(tmp_path, airflow_db):
    dags = ServiceDags(tmp_path, custom_tags=True)  # found by its tasks, whatever its tags
    assert dags.store() == sorted([dags.deploy, dags.rollback])

    found = _find(dags.service)

    assert found is not None, "the stored deployment DAG was not found"
    assert (found.deploy_dag_ids, found.rollback_dag_ids) == ([dags.deploy], [dags.rollback])
    assert found.config_from == f"DAG {dags.deploy}" and found.problem is None
    # The plan's spec with the params' defaults put back is the config the file wrote.
    assert found.spec.to_dict() == DeploymentSpec.from_dict(dags.config).to_dict()
    assert found.spec.error_rate_threshold_pct == 2.5
    assert [s.weight for s in found.spec.steps] == [25, 100]
    assert found.spec.release_inputs() == DeploymentSpec.from_dict(dags.config).release_inputs()


def test_the_view_runs_no_dag_file(client, tmp_path, airflow_db, tripwire_dags_folder, aws_unreachable):
    dags = ServiceDags(tmp_path)
    dags.store()
    assert dags.runs == 1  # parsed once, by the test, as the DAG processor would

    # Named, so AWS is read for this service alone; the DAGs are read all the same to find it.
    services = client.get(f"/api/services?service={dags.service}")
    page = client.get(f"/?service={dags.service}")

    assert services.status_code == 200 and page.status_code == 200
    assert dags.runs == 1, "the view ran the service's DAG file"
    assert not tripwire_dags_folder.exists(), "the view ran a file of the configured dags folder"
    entry = next(e for e in services.json() if e["service"] == dags.service)
    # Read from AWS with the stored config: the record is the config's; AWS does not answer here.
    assert entry["record"] == f"{dags.service}.ledger.example"
    assert "Could not connect" in entry["error"]
    assert (entry["deploy_dag_ids"], entry["rollback_dag_id"]) == ([dags.deploy], dags.rollback)
    assert f'id="svc-{dags.service}"' in page.text


def test_a_dag_whose_file_is_gone_is_not_shown(tmp_path, airflow_db):
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    dags = ServiceDags(tmp_path)
    dags.store()
    assert _find(dags.service) is not None
    with create_session() as session:  # what the DAG processor records when the file is deleted
        session.execute(update(DagModel).where(DagModel.dag_id.in_([dags.deploy, dags.rollback])).values(is_stale=True))

    assert _find(dags.service) is None


def test_a_config_stored_cut_off_says_which_setting_to_raise_until_a_run_planned(tmp_path, airflow_db, monkeypatch):
    from airflow.models.xcom import XComModel

    dags = ServiceDags(tmp_path)
    monkeypatch.setenv("AIRFLOW__CORE__MAX_TEMPLATED_FIELD_LENGTH", "100")
    dags.store()
    monkeypatch.delenv("AIRFLOW__CORE__MAX_TEMPLATED_FIELD_LENGTH")

    found = _find(dags.service)  # named by the factory's tags: the cut came before the name

    assert found is not None and found.spec is None
    assert "max_templated_field_length" in found.problem and dags.deploy in found.problem

    run_id = start_run(dags.deploy)
    planned = {**dags.config, "error_rate_threshold_pct": 4.0}  # this run's params
    XComModel.set("return_value", {"spec": planned}, dag_id=dags.deploy, task_id="plan", run_id=run_id)

    found = _find(dags.service)

    assert found.problem is None
    assert found.spec.record_name == f"{dags.service}.ledger.example"
    assert found.spec.error_rate_threshold_pct == 4.0
    assert found.config_from == f"the plan of run {run_id} of DAG {dags.deploy}"


def test_an_invalid_stored_config_is_that_services_problem(tmp_path, airflow_db, monkeypatch):
    from airflow.models.xcom import XComModel

    dags = ServiceDags(tmp_path)
    monkeypatch.setenv("AIRFLOW__CORE__MAX_TEMPLATED_FIELD_LENGTH", "100")
    dags.store()
    monkeypatch.delenv("AIRFLOW__CORE__MAX_TEMPLATED_FIELD_LENGTH")
    run_id = start_run(dags.deploy)
    XComModel.set(
        "return_value", {"spec": {"service": dags.service}}, dag_id=dags.deploy, task_id="plan", run_id=run_id
    )

    found = _find(dags.service)

    assert found.spec is None
    assert found.problem.startswith(f"the config in the plan of run {run_id} of DAG {dags.deploy} is not valid")
    assert "hosted_zone" in found.problem


def test_without_a_name_every_found_service_is_read_from_aws(tmp_path, airflow_db, monkeypatch):
    from bluegreen_provider.status import ServiceStatus
    from bluegreen_provider.ui import services

    first, second = ServiceDags(tmp_path), ServiceDags(tmp_path)
    first.store(), second.store()
    read = []

    def status(spec, *, aws_conn_id):
        read.append(spec.service)
        return ServiceStatus(spec.service, spec.record_name, {"blue": 100, "green": 0}, "blue", None, None)

    monkeypatch.setattr("bluegreen_provider.status.service_status", status)
    entries = services.collect_services(aws_conn_id="aws_default")

    assert {first.service, second.service} <= set(read)
    names = [e["service"] for e in entries]
    assert names == sorted(set(names))  # one entry per service, in name order
    # Every service with a readable config was read (others' problems are their entries' errors).
    assert [e["service"] for e in entries if e["error"] is None] == sorted(read)
    assert services.collect_services(aws_conn_id="aws_default", only=[second.service])[0]["service"] == second.service
    assert read[-1] == second.service and read.count(first.service) == 1


def test_a_multi_region_service_is_found_with_every_region_and_shown_per_region(
    client, tmp_path, airflow_db, aws_unreachable
):
    dags = ServiceDags(tmp_path)
    regions = [
        {"region_name": "us-east-1", "record_name": f"use1.{dags.service}.ledger.example"},
        {"region_name": "eu-west-1", "record_name": f"euw1.{dags.service}.ledger.example", "alarms": ["eu-errors"]},
    ]
    dags.config = {**dags.config, "regions": regions, "region_rollout": "waves"}
    source = (dags.folder / "ledger.py").read_text()
    (dags.folder / "ledger.py").write_text(source.replace(json.dumps(_config(dags.service)), json.dumps(dags.config)))
    dags.store()

    found = _find(dags.service)

    # One plan task per region in the DAG; the service's regions are rebuilt from them.
    written = DeploymentSpec.from_dict(dags.config)
    assert [r.to_dict() for r in found.spec.region_specs()] == [r.to_dict() for r in written.region_specs()]
    entries = [e for e in client.get(f"/api/services?service={dags.service}").json() if e["service"] == dags.service]
    assert [(e["region"], e["record"]) for e in entries] == [(r["region_name"], r["record_name"]) for r in regions]
    page = client.get(f"/?service={dags.service}").text
    for region in ("us-east-1", "eu-west-1"):
        assert f'id="svc-{dags.service}-{region}"' in page and f'data-region="{region}"' in page

"""The package as Airflow sees it: a registered provider, and DAG files that import cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_airflow_lists_the_provider_with_its_hooks_and_triggers():
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    ).stdout
    providers = {p["package_name"]: p for p in json.loads(out[out.index("[") :])}
    assert "airflow-provider-bluegreen" in providers, sorted(providers)
    assert providers["airflow-provider-bluegreen"]["version"] == "0.1.0"

    from bluegreen_provider.get_provider_info import get_provider_info

    info = get_provider_info()
    kinds = ("hooks", "operators", "sensors", "triggers")
    modules = [m for kind in kinds for entry in info[kind] for m in entry["python-modules"]]
    for module in modules:
        __import__(module)  # every module the provider declares exists and imports


def test_dag_files_import_without_errors_and_make_no_aws_calls(monkeypatch, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    # An unreachable endpoint: parsing must not need AWS at all.
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps({"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"}}),
    )
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    assert {"blue_green_deploy", "bluegreen_rollback"} <= set(bag.dag_ids)
    deploy = bag.dags["blue_green_deploy"]
    assert [t.task_id for t in deploy.topological_sort()][:5] == [
        "plan",
        "deploy_green",
        "run_migrations",
        "health_check",
        "shift_10",
    ]
    rollback = deploy.task_dict["rollback"]
    # The rollback is the run's teardown (it runs however the run ends) with plan as its setup, and
    # it waits for the deployment stages, never for the 24 h retention.
    assert rollback.is_teardown and rollback.trigger_rule == "all_done_setup_success"
    assert deploy.task_dict["plan"].is_setup and "plan" in rollback.upstream_task_ids
    assert {"shift_100", "approval", "hold", "soak_10"} <= rollback.upstream_task_ids
    assert "teardown_blue" not in rollback.upstream_task_ids
    assert deploy.max_active_runs == 1
    # Every stage is retried after a crash (a killed process, a lost worker); verdicts fail at once.
    stages = {t.task_id: t.retries for t in deploy.tasks if t.task_id != "rollback"}
    assert stages == dict.fromkeys(stages, 2), stages
    assert rollback.retries == 3


def test_stage_retries_must_be_a_count():
    import pytest

    from bluegreen_provider.dag_factory import deployment_dag

    sys.path.insert(0, str(REPO / "dags"))
    try:
        from lego_api_service import lego_api
    finally:
        sys.path.remove(str(REPO / "dags"))
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="stage_retries must be an int >= 0"):
            deployment_dag("retries", lego_api(), stage_retries=bad)
    dag = deployment_dag("retries", lego_api(), stage_retries=0)
    assert {t.retries for t in dag.tasks if t.task_id not in ("rollback", "teardown_blue")} == {0}


def test_a_bad_service_config_fails_at_parse_time_with_every_problem():
    import pytest

    from bluegreen_provider.dag_factory import deployment_dag
    from bluegreen_provider.spec import SpecError

    with pytest.raises(SpecError) as err:
        deployment_dag(
            "broken",
            {
                "service": "x",
                "hosted_zone": "example.com",
                "record_name": "api.example.com",
                "functions": [{"name": "fn", "zip_file": "a.zip", "version": "3"}],
                "steps": [{"weight": 50}, {"weight": 10}],
                "error_rate_threshold_pct": 0,
            },
        )
    message = str(err.value)
    assert "give exactly one of zip_file" in message
    assert "weights must strictly increase" in message
    assert "error_rate_threshold_pct must be in (0, 100]" in message


def test_a_migration_command_gets_the_variables_its_config_names():
    from bluegreen_provider.dag_factory import deployment_dag

    sys.path.insert(0, str(REPO / "dags"))
    try:
        from lego_api_service import lego_api
    finally:
        sys.path.remove(str(REPO / "dags"))
    config = lego_api()
    config["migrations"] = {
        "conn_id": "lego_db",
        "command": "alembic upgrade head",
        "env": {"ALEMBIC_CONFIG": "/srv/alembic.ini"},
        "pass_env": ["SERVICE_REGION"],
    }
    task = deployment_dag("command_env", config).task_dict["run_migrations"]
    assert task.env == {"ALEMBIC_CONFIG": "/srv/alembic.ini"} and list(task.pass_env) == ["SERVICE_REGION"]

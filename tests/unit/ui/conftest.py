"""Fixtures for the UI view: DAGs stored as the DAG processor stores them, runs of them, Airflow's auth
manager with tokens for chosen roles, and a client of the app.

The view applies Airflow's own authentication (plugin apps are mounted without it), so tests log in
the way the UI does: a JWT from the configured auth manager, sent as the ``_token`` cookie.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
from fastapi.testclient import TestClient

from bluegreen_provider.dag_factory import REGISTERED_SERVICES

LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
DAGS = Path(__file__).parent / "dags"
UI_BUNDLE = "bluegreen-ui-tests"


def _bundle(name: str, folder: Path) -> dict:
    return {"name": name, "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(folder)}}


@pytest.fixture(scope="module")
def ui_test_bundle(airflow_db) -> Iterator[None]:
    """Serve this folder's test DAGs from their own bundle (dag.test() runs only DAGs found in a bundle)."""
    from airflow.configuration import conf

    bundles = json.loads(conf.get("dag_processor", "dag_bundle_config_list"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([_bundle(UI_BUNDLE, DAGS), *bundles]))
        yield


def store_dags(folder: Path, bundle: str) -> list[str]:
    """Parse the DAG files of ``folder`` and store them serialized as bundle ``bundle``, as the DAG
    processor does; returns the DAG ids. Parsing runs the files here, in the test, never in the view."""
    from airflow.configuration import conf
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    bundles = json.loads(conf.get("dag_processor", "dag_bundle_config_list"))
    if bundle not in {b["name"] for b in bundles}:
        bundles.append(_bundle(bundle, folder))
    with pytest.MonkeyPatch.context() as mp, mock.patch.dict(REGISTERED_SERVICES):
        mp.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
        DagBundlesManager().sync_bundles_to_db(deactivate_missing=False)
        bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name=bundle)
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, bundle, None)
    return sorted(bag.dag_ids)


@pytest.fixture(scope="module")
def ui_dags(ui_test_bundle) -> list[str]:
    """This folder's DAG files, stored serialized in the metadata DB."""
    return store_dags(DAGS, UI_BUNDLE)


def start_run(dag_id: str) -> str:
    """A new running run of a stored DAG (none of its tasks runs); returns its run id."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    with create_session() as session:
        dag = SerializedDagModel.get_dag(dag_id, session=session)
        run = dag.create_dagrun(
            run_id=f"manual__ui_{uuid.uuid4().hex[:8]}",
            run_after=datetime.now(UTC),
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.RUNNING,
            session=session,
        )
        return run.run_id


@pytest.fixture(scope="session")
def token_for(airflow_db) -> Callable[[str | None], str]:
    """Make a JWT for a simple-auth-manager user with the given role (None: no permissions)."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = init_auth_manager()

    def make(role: str | None) -> str:
        return manager.generate_jwt(SimpleAuthManagerUser(username=f"oncall-{role}", role=role))

    return make


@pytest.fixture
def client(token_for, monkeypatch) -> TestClient:
    """A client of the view, logged in as a VIEWER (the least role that may read DAGs)."""
    from bluegreen_provider.ui.app import create_app

    # A viewer must be allowed because of the role, not because every user is an admin.
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    test_client = TestClient(create_app())
    test_client.cookies.set("_token", token_for("VIEWER"))
    return test_client


@pytest.fixture
def aws_unreachable(monkeypatch) -> None:
    """``aws_default`` aimed at a loopback port nothing listens on, failing fast (one attempt)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    extra = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "region_name": "us-east-1",
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))

"""Fixtures for the UI view: Airflow's auth manager with tokens for chosen roles, and a client of the app.

The view applies Airflow's own authentication (plugin apps are mounted without it), so tests log in
the way the UI does: a JWT from the configured auth manager, sent as the ``_token`` cookie.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
DAGS = Path(__file__).parent / "dags"


@pytest.fixture(scope="module")
def ui_test_bundle(airflow_db) -> Iterator[None]:
    """Serve this folder's test DAGs from their own bundle (dag.test() runs only DAGs found in a bundle)."""
    from airflow.configuration import conf

    bundles = json.loads(conf.get("dag_processor", "dag_bundle_config_list"))
    ours = {"name": "bluegreen-ui-tests", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(DAGS)}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([ours, *bundles]))
        yield


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
    from bluegreen_provider.ui import create_app

    # A viewer must be allowed because of the role, not because every user is an admin.
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    test_client = TestClient(create_app())
    test_client.cookies.set("_token", token_for("VIEWER"))
    return test_client

"""The plugin as the api-server loads it: through Airflow's plugins manager, in a fresh process.

A fresh process because the plugins manager caches what it loaded, and because that is what the
api-server does: import the plugins folder, validate the views against the public API's models, and
mount the FastAPI app. The environment gives AWS no endpoint at all, so an AWS call at import time
would show up as an import error or a hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

PROBE = r"""
import json, sys, time
from airflow import plugins_manager
started = time.monotonic()
plugins, errors = plugins_manager._get_plugins()
load_seconds = time.monotonic() - started
# What importing the plugin pulled in: the view's AWS and DAG-file code must wait for a request.
deferred = ["botocore", "bluegreen_provider.status", "bluegreen_provider.cli", "bluegreen_provider.dag_factory",
            "airflow.api_fastapi.core_api.security"]
imported_early = [m for m in deferred if m in sys.modules]
apps, _ = plugins_manager.get_fastapi_plugins()
views, _ = plugins_manager._get_ui_plugins()

from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app
api = TestClient(create_app())
listed = api.get("/api/v2/plugins").json()["plugins"]
mounted = [getattr(r, "path", None) for r in api.app.routes]
print(json.dumps({
    "plugins": [p.name for p in plugins],
    "errors": errors,
    "load_seconds": load_seconds,
    "imported_early": imported_early,
    "apps": [{"url_prefix": a["url_prefix"], "name": a["name"], "app": type(a["app"]).__name__} for a in apps],
    "views": views,
    "listed": [p for p in listed if p["name"] == "bluegreen"],
    "mounted": mounted,
    "page_status": api.get("/bluegreen/runs/no_such_dag/no_such_run").status_code,
}))
"""


@pytest.fixture(scope="module")
def loaded(airflow_db) -> dict:
    env = {
        **os.environ,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: an import-time AWS call would fail
    }
    env.pop("AIRFLOW_CONN_AWS_DEFAULT", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_plugin_loads_without_import_errors(loaded):
    assert "bluegreen" in loaded["plugins"]
    assert loaded["errors"] == {}


def test_fastapi_app_is_mounted_at_bluegreen(loaded):
    assert {"url_prefix": "/bluegreen", "name": "Blue/Green deployments", "app": "FastAPI"} in loaded["apps"]
    assert "/bluegreen" in loaded["mounted"]
    # Reached through the api-server (its all-admins middleware logs the request in): the app answers.
    assert loaded["page_status"] == 404


def test_views_are_a_nav_entry_and_a_dag_run_tab(loaded):
    views = {v["url_route"]: v for v in loaded["views"]}
    assert views["bluegreen"] == {
        "name": "Blue/Green",
        "href": "/bluegreen/",
        "destination": "nav",
        "url_route": "bluegreen",
        "nav_top_level": True,
    }
    assert views["bluegreen-run"]["destination"] == "dag_run"
    assert views["bluegreen-run"]["href"] == "/bluegreen/runs/{DAG_ID}/{RUN_ID}"


def test_public_plugins_api_accepts_the_views(loaded):
    """``GET /api/v2/plugins`` validates each view against ``ExternalViewResponse`` (destination literal)."""
    (plugin,) = loaded["listed"]
    assert {v["destination"] for v in plugin["external_views"]} == {"nav", "dag_run"}
    assert plugin["fastapi_apps"] == [
        {"app": "fastapi.applications.FastAPI", "url_prefix": "/bluegreen", "name": "Blue/Green deployments"}
    ]


def test_importing_the_plugin_touches_neither_aws_nor_dag_files(loaded):
    assert loaded["imported_early"] == []
    assert loaded["load_seconds"] < 5

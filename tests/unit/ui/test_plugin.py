"""The plugin as the api-server loads it: through Airflow's plugins manager, in a fresh process.

A fresh process because the plugins manager caches what it loaded, and because that is what the
api-server does: import the plugins folder and the ``airflow.plugins`` entry points, validate the
views against the public API's models, and mount the FastAPI app. The environment gives AWS no
endpoint at all, so an AWS call at import time would show up as an import error or a hang.

The installed package brings the plugin by its entry point; the repository's ``plugins/`` folder
holds a shim that defines it only for an Airflow that has the package on its path, not installed.
Each way, the plugin must be registered exactly once (a second registration is an import error
in the UI).
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
import importlib.metadata, json, sys, time
from unittest import mock
from airflow import plugins_manager, settings
from airflow._shared import module_loading

def ours(entry_point):
    return entry_point.value.startswith("bluegreen_provider.")

def load(folder, *, lazy_providers=True, installed=True):
    plugins_manager._get_plugins.cache_clear()
    settings.PLUGINS_FOLDER, settings.LAZY_LOAD_PROVIDERS = folder, lazy_providers
    real_with_dist, real_entry_points = module_loading.entry_points_with_dist, importlib.metadata.entry_points
    with mock.patch.object(
        module_loading, "entry_points_with_dist",
        lambda group: (pair for pair in real_with_dist(group) if installed or not ours(pair[0])),
    ), mock.patch.object(
        importlib.metadata, "entry_points",
        lambda **kw: [ep for ep in real_entry_points(**kw) if installed or not ours(ep)],
    ):
        started = time.monotonic()
        plugins, errors = plugins_manager._get_plugins()
    return {
        "seconds": time.monotonic() - started,
        "sources": [type(p.source).__name__ for p in plugins if p.name == "bluegreen"],
        "errors": errors,
    }

repo, empty = sys.argv[1], sys.argv[2]
scenarios = {"repo_folder": load(repo)}
# What importing the plugin pulled in: the view's AWS, DB and page code must wait for a request.
deferred = ["botocore", "bluegreen_provider.status", "bluegreen_provider.cli", "bluegreen_provider.dag_factory",
            "bluegreen_provider.ui.services", "bluegreen_provider.ui.timeline", "bluegreen_provider.ui.pages",
            "airflow.api_fastapi.core_api.security"]
imported_early = [m for m in deferred if m in sys.modules]
scenarios["empty_folder"] = load(empty)
scenarios["providers_discovered"] = load(repo, lazy_providers=False)
scenarios["not_installed"] = load(repo, installed=False)
scenarios["not_installed_no_folder"] = load(empty, installed=False)

load(repo)
apps, _ = plugins_manager.get_fastapi_plugins()
views, _ = plugins_manager._get_ui_plugins()

from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app
api = TestClient(create_app())
listed = api.get("/api/v2/plugins").json()["plugins"]
mounted = [getattr(r, "path", None) for r in api.app.routes]
print(json.dumps({
    "scenarios": scenarios,
    "imported_early": imported_early,
    "apps": [{"url_prefix": a["url_prefix"], "name": a["name"], "app": type(a["app"]).__name__} for a in apps],
    "views": views,
    "listed": [p for p in listed if p["name"] == "bluegreen"],
    "mounted": mounted,
    "page_status": api.get("/bluegreen/runs/no_such_dag/no_such_run").status_code,
    "stylesheet": api.get("/bluegreen/static/bluegreen.css").status_code,
}))
"""


@pytest.fixture(scope="module")
def loaded(airflow_db, tmp_path_factory) -> dict:
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: an import-time AWS call would fail
    }
    env.pop("AIRFLOW_CONN_AWS_DEFAULT", None)
    empty = tmp_path_factory.mktemp("no-plugins")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "plugins"), str(empty)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_installed_package_registers_the_plugin_once_by_its_entry_point(loaded):
    for scenario in ("repo_folder", "empty_folder", "providers_discovered"):
        found = loaded["scenarios"][scenario]
        assert found["sources"] == ["EntryPointSource"], (scenario, found)
        # A second copy of the package's metadata on sys.path (a stray *.egg-info in the working directory)
        # would register it twice: "Plugin 'bluegreen' already registered".
        assert found["errors"] == {}, (scenario, found)


def test_the_plugins_folder_shim_registers_it_when_the_package_is_not_installed(loaded):
    assert loaded["scenarios"]["not_installed"]["sources"] == ["PluginsDirectorySource"]
    assert loaded["scenarios"]["not_installed"]["errors"] == {}
    assert loaded["scenarios"]["not_installed_no_folder"]["sources"] == []


def test_the_installed_distribution_declares_the_entry_point_and_ships_the_pages():
    import tomllib
    from fnmatch import fnmatch
    from importlib.metadata import distribution

    from bluegreen_provider.ui.plugin import BlueGreenPlugin

    (entry_point,) = [
        ep for ep in distribution("airflow-provider-bluegreen").entry_points if ep.group == "airflow.plugins"
    ]
    assert entry_point.load() is BlueGreenPlugin
    # Every template and stylesheet is package data, so a wheel carries it.
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "bluegreen_provider"
    ]
    package = REPO / "bluegreen_provider"
    shipped = [p.relative_to(package).as_posix() for d in ("templates", "static") for p in (package / d).iterdir()]
    assert {"templates/services.html", "templates/run.html", "static/bluegreen.css"} <= set(shipped)
    assert [f for f in shipped if not any(fnmatch(f, g) for g in globs)] == []


def test_fastapi_app_is_mounted_at_bluegreen(loaded):
    assert {"url_prefix": "/bluegreen", "name": "Blue/Green deployments", "app": "FastAPI"} in loaded["apps"]
    assert "/bluegreen" in loaded["mounted"]
    # Reached through the api-server (its all-admins middleware logs the request in): the app answers.
    assert loaded["page_status"] == 404
    assert loaded["stylesheet"] == 200


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


def test_importing_the_plugin_touches_neither_aws_nor_the_db_nor_dag_files(loaded):
    assert loaded["imported_early"] == []
    assert loaded["scenarios"]["repo_folder"]["seconds"] < 5

"""End-to-end: the real deployment DAG under ``dag.test()``, against a fresh sandbox per test.

Each test gets its own moto world with live traffic, and its own PostgreSQL database for the
service's migrations. Timings are short (seconds, not minutes); the logic is the production one.
"""

from __future__ import annotations

import json
import os
import runpy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from bluegreen_provider.localrun import ApprovalResponder, task_states, xcom
from bluegreen_provider.sandbox import Sandbox
from bluegreen_provider.state import DeploymentState, decode_txt

REPO = Path(__file__).resolve().parents[2]
E2E_DAGS = Path(__file__).parent / "dags"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"

FAST: dict[str, Any] = {
    "steps": [
        {"weight": 10, "soak_seconds": 4},
        {"weight": 50, "soak_seconds": 4},
        {"weight": 100, "soak_seconds": 0},
    ],
    "poll_interval_seconds": 1,
    "min_requests": 8,
    # The fast sandbox publishes one datapoint per second, about a second late.
    "metrics_period_seconds": 1,
    "metrics_lag_seconds": 1,
    "approval_timeout_seconds": 300,
    "retention_seconds": 3,
}


def _admin_conn():
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    return conn


@pytest.fixture
def service_db(monkeypatch) -> Iterator[str]:
    """A fresh database for the lego API's migrations, as Airflow connection ``lego_db``."""
    name = f"bg_e2e_{uuid.uuid4().hex[:10]}"
    admin = _admin_conn()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    monkeypatch.setenv("AIRFLOW_CONN_LEGO_DB", url)
    yield url
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def sandbox(request, tmp_path, monkeypatch) -> Iterator[Sandbox]:
    """The lego world in moto with 80 req/s of traffic and metrics flushed every second.

    At 80 req/s a 4 s soak at 10 % expects about 30 candidate requests, well above ``min_requests``
    (8) even when a loaded machine delays the simulator; at 40 it sometimes saw fewer.

    ``@pytest.mark.sandbox(profile="aws", propagation_seconds=...)`` picks a profile and its numbers.
    """
    marker = request.node.get_closest_marker("sandbox")
    settings = {"rate_per_second": 80, "flush_seconds": 1, **(marker.kwargs if marker else {})}
    with Sandbox(state_dir=tmp_path / "sandbox", **settings) as box:
        for name in ("v1", "v2", "bad", "unhealthy"):
            box.release_zip(name)
        for key, value in box.connection_env("aws_default").items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("BLUEGREEN_HEALTH_BASE_URL", box.http_url)
        monkeypatch.setenv("BLUEGREEN_RELEASES_DIR", str(box.state_dir / "releases"))
        yield box


@pytest.fixture
def e2e_bundle(monkeypatch, airflow_db) -> None:
    """Serve the repo's dags/ plus the test-only variants (dag.test() runs only DAGs found in a bundle)."""
    from airflow.configuration import conf

    bundles = json.loads(conf.get("dag_processor", "dag_bundle_config_list"))
    ours = {"name": "bluegreen-e2e", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(E2E_DAGS)}}
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([*bundles, ours]))


class TaskStates(dict):
    """Task id -> state; its repr puts the tasks that did not succeed first, so a truncated assertion
    message still names them."""

    def __repr__(self) -> str:
        odd = {task: state for task, state in self.items() if state != "success"}
        return f"not success: {odd!r}; all: {dict(self)!r}"


@dataclass
class RunResult:
    dag_id: str
    run_id: str
    state: str
    states: dict[str, str | None]
    responder: ApprovalResponder

    def xcom(self, task_id: str) -> Any:
        return xcom(self.dag_id, self.run_id, task_id)


def load_dag(path: Path, name: str):
    return runpy.run_path(str(path))[name]


@pytest.fixture
def deploy(sandbox, service_db, e2e_bundle):
    """Run a deployment DAG to its end with a release and an approval action; returns RunResult."""

    def run(
        release: str = "v2",
        *,
        approval: str = "Approve",
        dag_file: Path = REPO / "dags" / "blue_green_deploy.py",
        dag_name: str = "deploy",
        on_approval_request=None,
        release_param: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> RunResult:
        """``release`` names a sandbox zip given to every function; ``release_param`` is the DAG's
        ``release`` param instead (pass ``functions`` by name only with it)."""
        dag = load_dag(dag_file, dag_name)
        functions = [
            {"name": f["name"], "zip_file": str(sandbox.state_dir / "releases" / f"{release}.zip")}
            for f in dag.params.get_param("functions").value
        ]
        responder = ApprovalResponder(dag.dag_id, action=approval, wait_seconds=120, before_answer=on_approval_request)
        responder.start()
        try:
            conf = {**FAST, "functions": functions, **overrides}
            if release_param is not None:
                conf["release"] = release_param
            dr = dag.test(run_conf=conf)
        finally:
            responder.cancel()
        assert responder.error is None, responder.error
        return RunResult(dag.dag_id, dr.run_id, dr.state, TaskStates(task_states(dag.dag_id, dr.run_id)), responder)

    return run


def split(sandbox: Sandbox) -> dict[str, int]:
    return sandbox.weights()


def record_sets(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every record set of the lego zone, read with the sandbox's own client."""
    return sandbox.clients()("route53").list_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id)[
        "ResourceRecordSets"
    ]


def deployment_state(sandbox: Sandbox) -> DeploymentState | None:
    """The service's deployment state record, read back from the sandbox (None before any deployment)."""
    txt = [r for r in record_sets(sandbox) if r["Type"] == "TXT" and r["Name"].startswith("_bluegreen.")]
    assert len(txt) <= 1, txt
    if not txt:
        return None
    return DeploymentState.from_json(decode_txt(" ".join(v["Value"] for v in txt[0]["ResourceRecords"])))


os.environ.setdefault("BLUEGREEN_E2E", "1")

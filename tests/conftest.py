"""Shared test set-up: an isolated Airflow home and metadata DB, and fake AWS credentials.

Set before Airflow is imported so no test ever touches a developer's own Airflow or AWS account.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# DAG files import their neighbours (e.g. lego_api_service); Airflow's bundle parsing adds the folder too.
sys.path.append(str(REPO / "dags"))
sys.path.append(str(REPO))  # bench/: its DAG parse probe backs a test
_HOME = Path(os.environ.get("BLUEGREEN_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="bluegreen-airflow-"))

os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME}/airflow.db")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
for key, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ[key] = value

# Every moto in the tests follows Route53's documented change-batch rules (exact-match DELETE,
# CREATE-if-absent, all-or-nothing batches, a change id per batch) and numbers Lambda versions as
# Lambda does (never a number twice), as the sandbox's moto does.
from bluegreen_provider.sandbox import lambda_rules, route53_rules  # noqa: E402

route53_rules.install()
lambda_rules.install()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB for tests that run DAGs (created once per session)."""
    marker = _HOME / ".migrated"
    if not marker.exists():
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            check=True,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
        )
        marker.touch()
    return _HOME

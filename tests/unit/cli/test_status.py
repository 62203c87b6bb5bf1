"""``bluegreen status`` against a sandbox: what it prints, which DAG folder and which sandbox it finds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bluegreen_provider.sandbox.state import SandboxState, write_state

from .conftest import DAGS


def test_status_reads_the_services_of_airflows_dags_folder_from_aws(bluegreen, sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", sandbox.connection_json())
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))
    result = bluegreen("status")
    assert (result.code, result.err) == (0, "")
    report = result.report("lego-api")
    assert report[:2] == ["lego-api  (api.lego-mocs.com)  blue live", "  split:     blue 100 / green 0"]
    assert "  lego-api-moc: blue→v1, green→v1" in report


@pytest.mark.parametrize("where", [".sandbox", ".sandbox/airflow"])
def test_status_uses_the_sandbox_running_in_the_working_directory(bluegreen, sandbox, monkeypatch, tmp_path, where):
    """``bluegreen sandbox up``'s state dir, or ``bluegreen airflow``'s (its process, not a daemon)."""
    monkeypatch.delenv("BLUEGREEN_SANDBOX_DIR")
    monkeypatch.chdir(tmp_path)
    write_state(tmp_path / where, SandboxState.of(sandbox, os.getpid()))
    result = bluegreen("--dags-folder", str(DAGS), "status", "--service", "lego-api")
    assert result.code == 0, result.err
    assert "split:     blue 100 / green 0" in result.out
    assert os.environ["AIRFLOW_CONN_AWS_DEFAULT"] == sandbox.connection_json()


def test_a_sandbox_dir_from_the_environment_overrides_the_working_directorys(
    bluegreen, sandbox, monkeypatch, tmp_path, no_credentials
):
    monkeypatch.chdir(tmp_path)
    write_state(tmp_path / ".sandbox", SandboxState.of(sandbox, os.getpid()))
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    monkeypatch.setenv("BLUEGREEN_SANDBOX_DIR", str(chosen))
    result = bluegreen("--dags-folder", str(DAGS), "status")
    assert result.code == 1 and "AIRFLOW_CONN_AWS_DEFAULT" not in os.environ
    assert result.error_line.startswith("bluegreen status: no AWS credentials for connection aws_default")


def test_the_state_file_of_a_sandbox_that_died_is_ignored(bluegreen, sandbox, monkeypatch, tmp_path, no_credentials):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    state_dir = Path(os.environ["BLUEGREEN_SANDBOX_DIR"])
    write_state(state_dir, SandboxState.of(sandbox, int(dead.stdout)))
    result = bluegreen("--dags-folder", str(DAGS), "status")
    assert result.code == 1
    assert result.error_line == (
        "bluegreen status: no AWS credentials for connection aws_default: Unable to locate credentials "
        "(configure the connection, or start a sandbox here: bluegreen sandbox up)"
    )


def test_an_unknown_service_is_refused_naming_the_known_ones(bluegreen, sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", sandbox.connection_json())
    result = bluegreen("--dags-folder", str(DAGS), "status", "--service", "orders-api")
    assert result.code == 2
    assert result.error_line == (
        f"bluegreen status: unknown service 'orders-api'; the DAGs in {DAGS} define: ['lego-api']"
    )


def test_no_region(bluegreen, monkeypatch, tmp_path, sandbox):
    """Route53 is global and answers; Lambda, the next call, needs a region."""
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    no_region = {"conn_type": "aws", "login": "testing", "password": "testing"}
    no_region["extra"] = {"endpoint_url": sandbox.endpoint_url}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(no_region))
    result = bluegreen("--dags-folder", str(DAGS), "status")
    assert result.code == 1
    assert result.error_line == (
        "bluegreen status: no AWS region for connection aws_default: You must specify a region. "
        "(set region_name in its extra)"
    )


def test_in_a_checkout_with_no_dags_folder_configured_status_reads_the_checkouts(bluegreen, sandbox, monkeypatch):
    from bluegreen_provider.locations import configured_dags_folder

    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", sandbox.connection_json())
    assert configured_dags_folder() == (DAGS, "the source checkout's dags/")
    result = bluegreen("status")
    assert result.code == 0, result.err
    assert result.report("lego-api")[1] == "  split:     blue 100 / green 0"

"""The ``bluegreen`` CLI run in-process: its exit code, stdout and stderr, and an AWS world to act on.

No test here may find a developer's own sandbox or AWS account: every test starts with no
connection in the environment and ``BLUEGREEN_SANDBOX_DIR`` pointing at an empty directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import airflow  # noqa: F401  (Airflow sets up its logging once, on import: here, before any test captures output)
import pytest

from bluegreen_provider.cli import main
from bluegreen_provider.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[3]
DAGS = REPO / "dags"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def report(self, service: str) -> list[str]:
        """The lines ``status`` printed for ``service`` (in this process Airflow's log lines may come before)."""
        lines = self.out.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{service}  ("))
        return lines[start:]

    @property
    def error_line(self) -> str:
        """stderr, which must be exactly one line and no traceback."""
        lines = self.err.splitlines()
        assert len(lines) == 1 and "Traceback" not in self.err, f"stderr is not one line: {self.err!r}"
        return lines[0]


@pytest.fixture(autouse=True)
def no_outside_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No connection, and no sandbox but the one a test starts.

    The CLI puts the connection of the sandbox it finds into ``os.environ``, as a process of its own
    may: the whole environment is put back after each test, so no later test reaches a stopped sandbox.
    """
    with mock.patch.dict(os.environ):
        monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
        (tmp_path / "no-sandbox").mkdir()
        monkeypatch.setenv("BLUEGREEN_SANDBOX_DIR", str(tmp_path / "no-sandbox"))
        yield


@pytest.fixture
def bluegreen(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``bluegreen ARGS…`` in this process."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials anywhere botocore looks (and no instance metadata service to wait for)."""
    for name in ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SECURITY_TOKEN", "SESSION_TOKEN", "PROFILE"):
        monkeypatch.delenv(f"AWS_{name}", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def connection(endpoint_url: str, **extra: object) -> str:
    """An ``aws`` connection to ``endpoint_url`` that tries each call once (no retries to wait out)."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {
                "endpoint_url": endpoint_url,
                "region_name": "us-east-1",
                "config_kwargs": {"retries": {"total_max_attempts": 1}},
                **extra,
            },
        }
    )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """The story's world, untouched, for a module's tests that only read it.

    Sandboxes in one process share moto's state: a test that changes the world starts its own in a
    module that does not use this one.
    """
    with Sandbox(rate_per_second=0.5) as sb:
        yield sb


@pytest.fixture
def lego_spec() -> Iterator[object]:
    """The lego-api spec as the repo's DAG files build it (the registry is left as found)."""
    from bluegreen_provider.cli import load_services
    from bluegreen_provider.dag_factory import REGISTERED_SERVICES

    with mock.patch.dict(REGISTERED_SERVICES):
        yield load_services(DAGS)["lego-api"]

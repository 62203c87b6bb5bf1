"""The CLI round trip with real processes: up (detached daemon), status, inject, down, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bluegreen_provider.sandbox.state import is_sandbox_daemon, read_state


def _cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bluegreen_provider.sandbox.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "sandbox"
    yield directory
    state = read_state(directory)  # a failed test must not leave its daemon running
    if state is not None and is_sandbox_daemon(state.pid):
        os.kill(state.pid, signal.SIGKILL)


def test_up_status_inject_down(state_dir: Path) -> None:
    dir_arg = ("--state-dir", str(state_dir))
    up = _cli("up", "--port", "0", "--rate", "100", "--flush", "0.5", *dir_arg)
    assert up.returncode == 0, up.stderr
    state = read_state(state_dir)
    assert state is not None and is_sandbox_daemon(state.pid)
    assert os.getsid(state.pid) == state.pid  # detached: it leads its own session
    assert "AIRFLOW_CONN_AWS_DEFAULT" in up.stdout and state.endpoint_url in up.stdout
    extra = json.loads(state.connection_json)["extra"]
    assert extra == {"endpoint_url": state.endpoint_url, "region_name": "us-east-1"}

    again = _cli("up", "--port", "0", *dir_arg)
    assert again.returncode == 0 and "already running" in again.stdout
    assert read_state(state_dir).pid == state.pid

    status = _cli("status", *dir_arg)
    assert status.returncode == 0, status.stderr
    assert "blue 100, green 0" in status.stdout

    injected = _cli("inject", "alarm", "lego-api-moc-errors", "--reason", "drill", *dir_arg)
    assert injected.returncode == 0, injected.stderr
    assert "alarm lego-api-moc-errors: ALARM (forced)" in _cli("status", *dir_arg).stdout
    assert _cli("inject", "clear", "lego-api-moc-errors", *dir_arg).returncode == 0
    assert "(forced)" not in _cli("status", *dir_arg).stdout
    assert _cli("inject", "alarm", "no-such-alarm", *dir_arg).returncode == 1

    down = _cli("down", *dir_arg)
    assert down.returncode == 0, down.stderr
    assert not is_sandbox_daemon(state.pid)
    assert not (state_dir / "sandbox.json").exists()
    assert _cli("status", *dir_arg).returncode == 1
    assert _cli("down", *dir_arg).returncode == 0

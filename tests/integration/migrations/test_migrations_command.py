"""Command mode: a project's own migration tool run under the same lock and deadline."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bluegreen_provider.hooks.migrations import MigrationsHook
from bluegreen_provider.migrations import MigrationError, MigrationLockTimeout, MigrationTimeout, advisory_lock_key

pytestmark = pytest.mark.postgres


def process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_command_gets_database_url_and_runs_under_the_lock(db):
    lock_id = advisory_lock_key("bluegreen")
    command = (
        'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -Atc "CREATE TABLE from_command AS SELECT '
        f"pg_try_advisory_lock({lock_id}) AS got_lock, current_setting('statement_timeout') AS st, "
        'current_database() AS dbname" && echo migrated-ok'
    )
    hook = MigrationsHook(postgres_conn_id=db.conn_id, statement_timeout_seconds=7, applied_by="cmd-run")
    with capture_logs() as logs:
        result = hook.run_command(command)

    # The tool reached this test's database, could not take the lock the runner held, and inherited
    # the statement timeout through PGOPTIONS.
    assert db.query("SELECT got_lock, st, dbname FROM from_command") == [(False, "7s", db.name)]
    assert result["mode"] == "command" and result["exit_code"] == 0 and result["applied"] == []
    assert {"event": "| migrated-ok", "log_level": "info"} in logs  # streamed line by line
    assert db.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]


def test_command_waits_for_a_run_holding_the_lock(db):
    holder = db.connect()
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (advisory_lock_key("lego-api"),))
    started = time.monotonic()
    try:
        with pytest.raises(MigrationLockTimeout, match="another migration holds lock 'lego-api'"):
            MigrationsHook(postgres_conn_id=db.conn_id, lock_key="lego-api", lock_timeout_seconds=1).run_command(
                'psql "$DATABASE_URL" -c "CREATE TABLE must_not_exist (id int)"'
            )
    finally:
        holder.close()
    assert 0.9 <= time.monotonic() - started < 5
    assert not db.exists("must_not_exist")


def test_command_past_the_deadline_is_killed_with_its_children(db, tmp_path, wait_until):
    pidfile = tmp_path / "child.pid"
    command = f"sleep 60 & echo $! > {pidfile}; wait"
    started = time.monotonic()
    with pytest.raises(MigrationTimeout, match=r"exceeded the deadline of 1.5 s; its process group .* was killed"):
        MigrationsHook(postgres_conn_id=db.conn_id, deadline_seconds=1.5).run_command(command)
    elapsed = time.monotonic() - started
    print(f"command deadline failed after {elapsed:.2f} s")

    assert 1.5 <= elapsed < 8, elapsed
    child = int(pidfile.read_text())
    wait_until(lambda: not process_alive(child), timeout=5, what=f"background child {child} to die")
    # The lock went with the runner's session: the next run takes it without waiting.
    again = MigrationsHook(postgres_conn_id=db.conn_id, lock_timeout_seconds=1).run_command("true")
    assert again["lock_wait_ms"] < 1000


def test_failing_command_fails_with_its_exit_code_and_output(db):
    with pytest.raises(MigrationError, match=r"exited with code 3; last output:\nmigration 0042 failed"):
        MigrationsHook(postgres_conn_id=db.conn_id).run_command("echo 'migration 0042 failed' >&2; exit 3")


def test_empty_command_is_refused_before_connecting(unreachable_conn):
    with pytest.raises(MigrationError, match="command must be a non-empty shell command"):
        MigrationsHook(postgres_conn_id=unreachable_conn).run_command("   ")


def test_output_is_streamed_while_the_command_runs(db, tmp_path, wait_until):
    """The command blocks until the test has seen its first line in the log, so buffering would hang."""
    flag = tmp_path / "seen"
    command = f"echo waiting-for-test; while [ ! -f {flag} ]; do sleep 0.05; done; echo done"
    hook = MigrationsHook(postgres_conn_id=db.conn_id, deadline_seconds=20)
    with capture_logs() as logs:
        results: dict = {}
        runner = threading.Thread(target=lambda: results.update(r=hook.run_command(command)))
        runner.start()
        wait_until(lambda: {"event": "| waiting-for-test", "log_level": "info"} in logs, what="first line")
        flag.touch()
        runner.join(20)
    assert results["r"]["exit_code"] == 0
    assert {"event": "| done", "log_level": "info"} in logs


# -- what the tool sees: the database and an allow-list, never the worker's secrets ----------------------
CANARIES = {
    "AWS_ACCESS_KEY_ID": "AKIACANARYACCESSKEY",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-access-key",
    "AWS_SESSION_TOKEN": "canary-aws-session-token",
    "AWS_SECURITY_TOKEN": "canary-aws-security-token",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:canary-metadata-password@127.0.0.1:1/airflow",
    "AIRFLOW__CORE__FERNET_KEY": "canary-fernet-key",
    "AIRFLOW_CONN_PAYMENTS_API": "http://svc:canary-conn-password@payments",
    "AIRFLOW_VAR_STRIPE_KEY": "canary-variable-secret",
    "PGPASSWORD": "canary-pgpassword",
    "PYTHONPATH": "/canary/airflow/dags",
}
# Variables the shell itself exports to the commands it runs.
SHELL_ADDED = {"PWD", "OLDPWD", "SHLVL", "_"}


def dumped_env(path: Path) -> dict[str, str]:
    """The environment a command wrote with ``env -0`` (values may hold newlines)."""
    entries = [e for e in path.read_bytes().split(b"\0") if e]
    return dict(e.decode().split("=", 1) for e in entries)


def test_command_sees_the_database_and_the_allow_list_only(db, tmp_path, monkeypatch):
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    allowed = {
        "PATH": os.environ["PATH"],
        "HOME": "/home/canary-free",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "Europe/Copenhagen",
        "TMPDIR": str(tmp_path),
        "NODE_OPTIONS": "--max-old-space-size=256",
    }
    for name, value in allowed.items():
        monkeypatch.setenv(name, value)
    dump = tmp_path / "env.bin"
    hook = MigrationsHook(postgres_conn_id=db.conn_id, statement_timeout_seconds=9)
    result = hook.run_command(
        f'env -0 > {dump} && psql "$DATABASE_URL" -Atc "CREATE TABLE seen AS SELECT current_database() AS d"',
        env={"APP_MODE": "migrate"},
        pass_env=["NODE_OPTIONS", "NOT_ON_THIS_WORKER"],
    )

    seen = dumped_env(dump)
    assert result["exit_code"] == 0 and db.query("SELECT d FROM seen") == [(db.name,)]  # the URL works
    assert seen["DATABASE_URL"] == db.uri
    assert seen["PGOPTIONS"] == "-c statement_timeout=9000"
    assert seen["APP_MODE"] == "migrate"
    for name, value in allowed.items():
        assert seen.get(name) == value, name
    assert set(seen) - SHELL_ADDED <= {*allowed, "DATABASE_URL", "PGOPTIONS", "APP_MODE", "USER", "LOGNAME", "LANGUAGE"}
    assert "LC_ALL" in seen and "NOT_ON_THIS_WORKER" not in seen
    for name in [*CANARIES, f"AIRFLOW_CONN_{db.conn_id.upper()}"]:
        assert name not in seen, name
    raw = dump.read_bytes()
    leaked = [name for name, value in CANARIES.items() if value.encode() in raw]
    assert not leaked, f"worker secrets reached the migration command: {leaked}"


def test_the_database_password_never_reaches_logs_or_errors(db, monkeypatch):
    """Trust auth takes any password, so the URL below really connects while carrying one."""
    password = "canary/p@ss w0rd"
    quoted = "canary%2Fp%40ss%20w0rd"
    monkeypatch.setenv(f"AIRFLOW_CONN_{db.conn_id.upper()}", f"postgresql://postgres:{quoted}@127.0.0.1:5432/{db.name}")
    hook = MigrationsHook(postgres_conn_id=db.conn_id)
    command = (
        f'echo "url=$DATABASE_URL"; echo "raw={password}"; echo "quoted={quoted}"; '
        'psql "$DATABASE_URL" -Atc "SELECT 40 + 2"; exit 4'
    )
    with capture_logs() as logs, pytest.raises(MigrationError, match="exited with code 4") as err:
        hook.run_command(command)

    lines = [str(entry.get("event")) for entry in logs]
    assert "| url=***" in lines and "| raw=***" in lines and "| quoted=***" in lines
    assert "| 42" in lines  # the password-bearing URL connected
    for text in [str(err.value), *lines, *(str(entry) for entry in logs)]:
        assert password not in text and quoted not in text, text
    assert "url=***\nraw=***\nquoted=***\n42\n" in str(err.value)
    # Airflow's own masker knows the URL and the password too (the task log's redaction).
    from airflow.sdk._shared.secrets_masker import redact

    assert redact(f"got {hook.database_url()} and {password}") == "got *** and ***"


def test_bad_variables_are_refused_before_connecting(unreachable_conn):
    with pytest.raises(MigrationError, match=r"^pass_env: AIRFLOW__CORE__FERNET_KEY is Airflow's own setting"):
        MigrationsHook(postgres_conn_id=unreachable_conn).run_command("true", pass_env=["AIRFLOW__CORE__FERNET_KEY"])

"""Command mode: a project's own migration tool run under the same lock and deadline."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bluegreen_provider.hooks.migrations import (
    MigrationError,
    MigrationLockTimeout,
    MigrationsHook,
    MigrationTimeout,
    advisory_lock_key,
)

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

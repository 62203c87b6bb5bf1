"""Database migrations that must finish before any traffic moves to green (story AC 9).

Green's code may read columns blue never had, so the schema moves first. Blue keeps serving from the
same database meanwhile, so migrations must be additive, and a step that hangs must not stall the
rollout: every run is bounded by a per-statement ``statement_timeout`` and an overall deadline.

Two runs (two deployments, or a retry whose first worker is still alive) are serialised by a
session-level advisory lock, so no version is ever applied twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from typing import Any
from urllib.parse import quote, quote_plus

from airflow.providers.postgres.hooks.postgres import PostgresHook

from bluegreen_provider.command_env import command_environment
from bluegreen_provider.migrations import (
    DEFAULT_LEDGER,
    IN_TRANSACTION,
    LOCK_NOT_AVAILABLE,
    MASKED,
    QUERY_CANCELED,
    Migration,
    MigrationConfigError,
    MigrationError,
    MigrationLockTimeout,
    MigrationTimeout,
    _min_masked_length,
    _sqlstate,
    advisory_lock_key,
    check_command_env,
    check_history,
    check_settings,
    load_migrations,
)


class MigrationsHook(PostgresHook):
    """Apply versioned SQL files, or run a project's own migration command, under one lock and deadline.

    The connection comes from the postgres provider (``postgres_conn_id``), so extras, IAM and
    environment-variable connections behave as for any ``PostgresHook``.

    :param lock_key: name of the advisory lock; runs sharing it never migrate at once.
    :param lock_timeout_seconds: how long to wait for that lock before failing.
    :param statement_timeout_seconds: ``statement_timeout`` for every statement.
    :param deadline_seconds: wall-clock budget of the whole run, lock wait included.
    :param ledger_table: table (optionally ``schema.table``) recording applied versions.
    :param applied_by: who applies, written to the ledger (the operator passes dag/task/run ids).
    """

    def __init__(
        self,
        *args: Any,
        lock_key: str = "bluegreen",
        lock_timeout_seconds: float = 60,
        statement_timeout_seconds: float = 300,
        deadline_seconds: float = 600,
        ledger_table: str = DEFAULT_LEDGER,
        applied_by: str = "bluegreen",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        check_settings(
            lock_key=lock_key,
            lock_timeout=lock_timeout_seconds,
            statement_timeout=statement_timeout_seconds,
            deadline=deadline_seconds,
            ledger_table=ledger_table,
        )
        self.lock_key, self.lock_id = lock_key, advisory_lock_key(lock_key)
        self.lock_timeout, self.statement_timeout = lock_timeout_seconds, statement_timeout_seconds
        self.deadline, self.applied_by = deadline_seconds, applied_by
        self.ledger_table = ledger_table
        self._secrets: tuple[str, ...] = ()  # what the command's output is cleaned of (run_command)
        self._ledger_sql = ".".join(f'"{part}"' for part in ledger_table.split("."))

    # ------------------------------------------------------------------ read-only
    def pending_migrations(self, migrations_folder: str | os.PathLike[str]) -> list[Migration]:
        """What a run would apply now; raises on drift or out-of-order files. Writes nothing."""
        migrations = load_migrations(migrations_folder)
        with closing(self.get_conn()) as conn:
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute(f"SET statement_timeout = {int(self.statement_timeout * 1000)}")
            return check_history(migrations, self._applied(cur))

    def database_url(self) -> str:
        """``postgresql://`` URI of the connection, for tools that read ``DATABASE_URL``."""
        url = self.sqlalchemy_url.set(drivername="postgresql")
        extras = {
            k: str(v)
            for k, v in self.connection.extra_dejson.items()
            if k not in self.ignored_extra_options and isinstance(v, str | int) and not isinstance(v, bool)
        }
        return url.update_query_dict(extras).render_as_string(hide_password=False)

    # ------------------------------------------------------------------ folder mode
    def migrate(self, migrations_folder: str | os.PathLike[str]) -> dict[str, Any]:
        """Apply pending migrations, each in its own transaction together with its ledger row."""
        migrations = load_migrations(migrations_folder)
        started = time.monotonic()
        with closing(self.get_conn()) as conn, self._deadline_watch(conn, started) as expired:
            lock_wait_ms = self._lock(conn, started, expired)
            try:
                applied = self._prepare_ledger(conn.cursor())
            except Exception as exc:
                raise self._explain(exc, "reading the migration ledger", expired) from exc
            pending = check_history(migrations, applied)
            unknown = sorted(set(applied) - {m.version for m in migrations})
            if unknown:
                self.log.warning("Ledger has versions with no file in this folder: %s", unknown)
            done = [self._apply_one(conn, m, expired) for m in pending]
        self.log.info("Applied %d migration(s), %d already applied", len(done), len(applied))
        return {
            "mode": "folder",
            "applied": done,
            "skipped": sorted(v for v in applied if v in {m.version for m in migrations}),
            "pending": [],
            "lock_wait_ms": lock_wait_ms,
        }

    def _apply_one(self, conn: Any, m: Migration, expired: threading.Event) -> dict[str, Any]:
        if expired.is_set():
            raise MigrationTimeout(f"deadline of {self.deadline:g} s passed before V{m.version} could start")
        self.log.info("Applying V%s %s (sha256 %s)", m.version, m.description, m.checksum)
        conn.autocommit = False
        cur = conn.cursor()
        begin = time.monotonic()
        try:
            cur.execute(m.sql)
            if conn.info.transaction_status != IN_TRANSACTION:
                raise MigrationConfigError(
                    f"V{m.version} ({m.path.name}) ended its own transaction (COMMIT/ROLLBACK); "
                    "migrations must not manage transactions, the runner wraps each file in one"
                )
            duration_ms = int((time.monotonic() - begin) * 1000)
            cur.execute(
                f"INSERT INTO {self._ledger_sql} (version, description, checksum, duration_ms, applied_by) "
                "VALUES (%s, %s, %s, %s, %s)",
                (m.version, m.description, m.checksum, duration_ms, self.applied_by),
            )
            conn.commit()
        except Exception as exc:
            with suppress(Exception):
                conn.rollback()
            raise self._explain(exc, f"V{m.version} ({m.path.name})", expired) from exc
        finally:
            with suppress(Exception):
                conn.autocommit = True
        self.log.info("Applied V%s in %d ms", m.version, duration_ms)
        return {"version": m.version, "description": m.description, "duration_ms": duration_ms}

    # ------------------------------------------------------------------ command mode
    def run_command(
        self,
        command: str,
        cwd: str | None = None,
        *,
        env: Mapping[str, str | int] | None = None,
        pass_env: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Run a project's own migration tool under the same lock and deadline.

        The tool gets ``DATABASE_URL``, ``PGOPTIONS`` carrying the statement timeout (for libpq-based
        clients), a short allow-list of the worker's variables, ``pass_env`` copied from the worker
        and ``env`` as given; never the rest of the worker's environment (see ``command_environment``).
        At the deadline its whole process group is killed. The connection's password is masked in
        Airflow's logs and cut out of the output this hook logs and raises.
        """
        if not isinstance(command, str) or not command.strip():
            raise MigrationConfigError("command must be a non-empty shell command")
        check_command_env(env, pass_env)
        database_url = self.database_url()
        self._secrets = self._mask(database_url)
        missing = [name for name in pass_env or () if name not in os.environ]
        if missing:
            self.log.warning("pass_env: not set on this worker, not passed: %s", ", ".join(missing))
        child_env = command_environment(database_url, int(self.statement_timeout * 1000), env, pass_env or ())
        started = time.monotonic()
        with closing(self.get_conn()) as conn, self._deadline_watch(conn, started) as expired:
            lock_wait_ms = self._lock(conn, started, expired)
            self.log.info("Running migration command: %s", self._redact(command))
            self.log.info("Its environment: %s (values not shown)", ", ".join(sorted(child_env)))
            proc = subprocess.Popen(
                command, shell=True, cwd=cwd, env=child_env, start_new_session=True,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            )  # fmt: skip
            tail: list[str] = []
            reader = threading.Thread(target=self._stream, args=(proc, tail), daemon=True)
            reader.start()
            try:
                code = proc.wait(timeout=max(0.0, started + self.deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill_group(proc)
                raise MigrationTimeout(
                    f"migration command exceeded the deadline of {self.deadline:g} s; its process group "
                    f"(pgid {proc.pid}) was killed"
                ) from None
            finally:
                reader.join(timeout=5)
        if code != 0:
            raise MigrationError(f"migration command exited with code {code}; last output:\n" + "".join(tail))
        duration_ms = int((time.monotonic() - started) * 1000) - lock_wait_ms
        self.log.info("Migration command finished in %d ms", duration_ms)
        return {"mode": "command", "applied": [], "skipped": [], "pending": [], "lock_wait_ms": lock_wait_ms,
                "exit_code": code, "duration_ms": duration_ms}  # fmt: skip

    def _mask(self, database_url: str) -> tuple[str, ...]:
        """Register the URL and password with Airflow's secrets masker; return what ``_redact`` cuts.

        Airflow masks a connection's password when it loads the connection, but not the URL built
        from it (its password URL-quoted). The hook also redacts its own output, so a tool printing
        its ``DATABASE_URL`` leaks it neither into a log nor into the error the run fails with.
        Passwords shorter than Airflow's ``[logging] min_length_masked_secret`` are masked in the
        URL only, as Airflow does (cutting "pw" out of every line would ruin the output).
        """
        from airflow.sdk.log import mask_secret

        password = self.connection.password or ""
        secrets = [database_url]
        if len(password) >= _min_masked_length():
            secrets += [password, quote(password, safe=""), quote_plus(password)]
        for secret in secrets:
            mask_secret(secret)
        return tuple(sorted(set(secrets), key=len, reverse=True))

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASKED)
        return text

    def _stream(self, proc: subprocess.Popen[str], tail: list[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = self._redact(raw)
            self.log.info("| %s", line.rstrip())
            tail.append(line)
            del tail[:-20]

    def _kill_group(self, proc: subprocess.Popen[str]) -> None:
        """TERM the group, give it a moment to exit cleanly, then KILL whatever is left."""
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
                if sig == signal.SIGTERM:
                    with suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)  # children that ignored TERM
                return
            except subprocess.TimeoutExpired:
                continue

    # ------------------------------------------------------------------ lock, deadline, ledger
    def _lock(self, conn: Any, started: float, expired: threading.Event) -> int:
        """Take the session advisory lock; ``lock_timeout`` bounds the wait on the server side."""
        conn.autocommit = True
        cur = conn.cursor()
        name = f"bluegreen-migrations {self.applied_by}"[:63]
        cur.execute("SELECT set_config('application_name', %s, false)", (name,))
        wait_s = min(self.lock_timeout, max(0.001, started + self.deadline - time.monotonic()))
        cur.execute(f"SET lock_timeout = {max(1, int(wait_s * 1000))}")
        begin = time.monotonic()
        try:
            cur.execute("SELECT pg_advisory_lock(%s)", (self.lock_id,))
        except Exception as exc:
            if _sqlstate(exc) == LOCK_NOT_AVAILABLE:
                raise MigrationLockTimeout(
                    f"another migration holds lock {self.lock_key!r} (key {self.lock_id}, held by "
                    f"{self._holder(conn)}); gave up after waiting {wait_s:g} s"
                ) from exc
            raise self._explain(exc, "the advisory lock wait", expired) from exc
        lock_wait_ms = int((time.monotonic() - begin) * 1000)
        cur.execute("RESET lock_timeout")
        self.log.info("Holding migration lock %r after waiting %d ms", self.lock_key, lock_wait_ms)
        return lock_wait_ms

    def _holder(self, conn: Any) -> str:
        cur = conn.cursor()
        cur.execute(
            "SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s",
            ((self.lock_id >> 32) & 0xFFFFFFFF, self.lock_id & 0xFFFFFFFF),
        )
        row = cur.fetchone()
        return f"pid {row[0]} {row[1]!r}" if row else "a session that has since released it"

    @contextmanager
    def _deadline_watch(self, conn: Any, started: float) -> Iterator[threading.Event]:
        """Cancel the running statement at the deadline; the caller rolls back and reports it."""
        expired, stop = threading.Event(), threading.Event()

        def watch() -> None:
            if not stop.wait(max(0.0, started + self.deadline - time.monotonic())):
                expired.set()
                getattr(conn, "cancel_safe", conn.cancel)()

        watcher = threading.Thread(target=watch, name="migration-deadline", daemon=True)
        watcher.start()
        try:
            yield expired
        finally:
            stop.set()
            watcher.join()

    def _explain(self, exc: Exception, what: str, expired: threading.Event) -> Exception:
        if isinstance(exc, MigrationError):
            return exc
        if _sqlstate(exc) == QUERY_CANCELED and expired.is_set():
            return MigrationTimeout(f"{what} hit the overall deadline of {self.deadline:g} s; rolled back")
        if _sqlstate(exc) == QUERY_CANCELED:
            return MigrationTimeout(
                f"{what} hit statement_timeout of {self.statement_timeout:g} s; rolled back: {exc}".strip()
            )
        return MigrationError(f"{what} failed and was rolled back: {exc}".strip())

    def _prepare_ledger(self, cur: Any) -> dict[int, str]:
        """Create the ledger if needed (under the lock, so two first runs cannot race) and read it."""
        cur.execute(f"SET statement_timeout = {int(self.statement_timeout * 1000)}")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self._ledger_sql} (version bigint PRIMARY KEY, "
            "description text NOT NULL, checksum char(64) NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now(), duration_ms bigint NOT NULL, "
            "applied_by text NOT NULL)"
        )
        return self._applied(cur)

    def _applied(self, cur: Any) -> dict[int, str]:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (self._ledger_sql,))
        if not cur.fetchone()[0]:
            return {}
        cur.execute(f"SELECT version, checksum FROM {self._ledger_sql}")
        return {int(v): c.strip() for v, c in cur.fetchall()}


def pending_migrations(
    postgres_conn_id: str, migrations_folder: str | os.PathLike[str], *, ledger_table: str = DEFAULT_LEDGER
) -> list[dict[str, Any]]:
    """Pending migrations as plain dicts, for the CLI and the plan step; applies nothing."""
    hook = MigrationsHook(postgres_conn_id=postgres_conn_id, ledger_table=ledger_table)
    return [m.as_dict() for m in hook.pending_migrations(migrations_folder)]

"""A fresh PostgreSQL database per test, reachable as Airflow connection ``bg_test_db``."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
CONN_ID = "bg_test_db"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "migrations"
LEGO_API = Path(__file__).resolve().parents[3] / "dags" / "migrations" / "lego_api"
GATE_LOCK = 4242  # the advisory lock fixtures/migrations/gated/V002 waits on


@dataclass
class PgDatabase:
    """Reads state back through a connection of its own, independent of the code under test."""

    name: str
    conn_id: str = CONN_ID

    @property
    def uri(self) -> str:
        return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{self.name}"

    def connect(self) -> Any:
        conn = psycopg2.connect(dbname=self.name, **PG)
        conn.autocommit = True
        return conn

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def exists(self, table: str) -> bool:
        return self.query("SELECT to_regclass(%s) IS NOT NULL", (table,))[0][0]

    def ledger(self, table: str = "bluegreen_schema_migrations") -> list[tuple[Any, ...]]:
        return self.query(
            f"SELECT version, description, checksum, applied_at, duration_ms, applied_by FROM {table} ORDER BY version"
        )

    def backends_waiting(self, objid: int, application_name: str | None = None) -> int:
        """Sessions of this database blocked on the advisory lock whose low 32 bits are ``objid``."""
        sql = (
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objid::bigint = %s "
            "AND a.datname = %s"
        )
        params: tuple[Any, ...] = (objid & 0xFFFFFFFF, self.name)
        if application_name is not None:
            sql += " AND a.application_name = %s"
            params += (application_name,)
        return self.query(sql, params)[0][0]


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> Iterator[PgDatabase]:
    admin = psycopg2.connect(dbname="test", **PG)
    admin.autocommit = True
    name = f"bg_mig_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", PgDatabase(name).uri)
    try:
        yield PgDatabase(name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def unreachable_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """A connection that fails if anything tries to use it: proves validation came first."""
    monkeypatch.setenv("AIRFLOW_CONN_BG_UNREACHABLE", "postgresql://postgres@127.0.0.1:1/nowhere")
    return "bg_unreachable"


@pytest.fixture
def copy_fixture(tmp_path: Path) -> Callable[..., Path]:
    """Copy a sample folder (optionally only some files) so a test can edit it."""

    def copy(name: str, only: tuple[str, ...] | None = None, dest: str | None = None) -> Path:
        target = tmp_path / (dest or name)
        target.mkdir()
        for path in (FIXTURES / name).iterdir():
            if only is None or path.name in only:
                shutil.copy(path, target / path.name)
        return target

    return copy


@pytest.fixture
def gate(db: PgDatabase) -> Iterator[Callable[[], None]]:
    """Hold the gate lock so a run of ``gated`` stops inside V002; call the result to open it."""
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (GATE_LOCK,))
    opened = threading.Event()

    def open_gate() -> None:
        if not opened.is_set():
            opened.set()
            conn.close()  # ends the session, which releases the lock

    try:
        yield open_gate
    finally:
        open_gate()


def _wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll a real condition (e.g. pg_locks) until it holds; fail instead of hanging."""
    give_up = time.monotonic() + timeout
    tick = threading.Event()
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        tick.wait(0.02)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    return _wait_until


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def lego_api_dir() -> Path:
    return LEGO_API

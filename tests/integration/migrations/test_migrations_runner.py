"""The folder runner against a real PostgreSQL: ledger, idempotency, lock, rollback and time limits."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from bluegreen_provider.hooks.migrations import MigrationsHook, pending_migrations
from bluegreen_provider.migrations import (
    MigrationConfigError,
    MigrationError,
    MigrationLockTimeout,
    MigrationTimeout,
    advisory_lock_key,
)

pytestmark = pytest.mark.postgres


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hook(conn_id: str, applied_by: str = "test", **kwargs: Any) -> MigrationsHook:
    return MigrationsHook(postgres_conn_id=conn_id, applied_by=applied_by, **kwargs)


def run_in_thread(target: Any, results: dict[str, Any], key: str) -> threading.Thread:
    def run() -> None:
        try:
            results[key] = target()
        except Exception as exc:
            results[key] = exc

    thread = threading.Thread(target=run, name=key)
    thread.start()
    return thread


def test_applies_all_in_order_and_records_ledger(db, fixtures_dir):
    folder = fixtures_dir / "basic"
    result = hook(db.conn_id, "dag/migrate/run-1#1").migrate(folder)

    assert [a["version"] for a in result["applied"]] == [1, 2, 3]
    assert result["mode"] == "folder" and result["skipped"] == []
    assert db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'widgets' "
                    "ORDER BY ordinal_position") == [("id",), ("name",), ("color",)]  # fmt: skip
    assert db.exists("orders")
    ledger = db.ledger()
    assert [(v, d, c, by) for v, d, c, _, _, by in ledger] == [
        (1, "create widgets", sha256(folder / "V001__create_widgets.sql"), "dag/migrate/run-1#1"),
        (2, "add widget color", sha256(folder / "V002__add_widget_color.sql"), "dag/migrate/run-1#1"),
        (3, "create orders", sha256(folder / "V003__create_orders.sql"), "dag/migrate/run-1#1"),
    ]
    assert all(ms >= 0 for *_, ms, _ in ledger)


def test_second_run_is_a_no_op(db, fixtures_dir):
    folder = fixtures_dir / "basic"
    hook(db.conn_id, "run-1").migrate(folder)
    before = db.ledger()

    second = hook(db.conn_id, "run-2").migrate(folder)

    assert second["applied"] == [] and second["skipped"] == [1, 2, 3]
    assert db.ledger() == before  # same rows, same applied_at and applied_by
    for row in before:
        print(row)


def test_concurrent_runs_are_serialised(db, fixtures_dir, gate, wait_until):
    folder = fixtures_dir / "gated"
    lock_id = advisory_lock_key("bluegreen")
    results: dict[str, Any] = {}

    first = run_in_thread(lambda: hook(db.conn_id, "run-a").migrate(folder), results, "a")
    wait_until(lambda: db.backends_waiting(4242, "bluegreen-migrations run-a") == 1, what="run-a inside V002")
    second = run_in_thread(lambda: hook(db.conn_id, "run-b").migrate(folder), results, "b")
    wait_until(lambda: db.backends_waiting(lock_id, "bluegreen-migrations run-b") == 1, what="run-b queued")
    gate()
    first.join(30)
    second.join(30)

    assert [a["version"] for a in results["a"]["applied"]] == [1, 2], results
    assert results["b"]["applied"] == [] and results["b"]["skipped"] == [1, 2]
    assert results["b"]["lock_wait_ms"] > 0
    assert [(v, by) for v, *_, by in db.ledger()] == [(1, "run-a"), (2, "run-a")]


def test_second_run_gives_up_on_the_lock_clearly(db, fixtures_dir, gate, wait_until):
    folder = fixtures_dir / "gated"
    results: dict[str, Any] = {}
    first = run_in_thread(lambda: hook(db.conn_id, "run-a").migrate(folder), results, "a")
    wait_until(lambda: db.backends_waiting(4242, "bluegreen-migrations run-a") == 1, what="run-a inside V002")

    started = time.monotonic()
    with pytest.raises(MigrationLockTimeout) as err:
        hook(db.conn_id, "run-b", lock_timeout_seconds=1).migrate(folder)
    waited = time.monotonic() - started
    gate()
    first.join(30)

    message = str(err.value)
    assert "another migration holds lock 'bluegreen'" in message
    assert "bluegreen-migrations run-a" in message and "waiting 1 s" in message
    assert 0.9 <= waited < 5, waited
    assert [(v, by) for v, *_, by in db.ledger()] == [(1, "run-a"), (2, "run-a")]


def test_failing_migration_leaves_nothing_of_itself(db, fixtures_dir):
    with pytest.raises(MigrationError, match=r"V2 \(V002__half_done.sql\) failed and was rolled back") as err:
        hook(db.conn_id).migrate(fixtures_dir / "failing")

    assert "no_such_table" in str(err.value)
    assert db.exists("widgets") and not db.exists("half_done") and not db.exists("orders")
    assert [row[0] for row in db.ledger()] == [1]
    # The lock went with the session: a fresh run can take it at once and fails the same way.
    with pytest.raises(MigrationError, match="V2"):
        hook(db.conn_id, lock_timeout_seconds=1).migrate(fixtures_dir / "failing")


def test_checksum_drift_is_refused_and_never_rerun(db, copy_fixture):
    folder = copy_fixture("basic")
    hook(db.conn_id).migrate(folder)
    before = db.ledger()
    old = sha256(folder / "V002__add_widget_color.sql")
    (folder / "V002__add_widget_color.sql").write_text("ALTER TABLE widgets ADD COLUMN size text;\n")
    new = sha256(folder / "V002__add_widget_color.sql")

    for attempt in (lambda: hook(db.conn_id).migrate(folder), lambda: pending_migrations(db.conn_id, folder)):
        with pytest.raises(MigrationConfigError, match="checksum drift: migration V2") as err:
            attempt()
        assert old in str(err.value) and new in str(err.value)

    assert db.ledger() == before
    assert not db.query(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'widgets' AND column_name = 'size'"
    )


def test_out_of_order_version_is_refused(db, copy_fixture, fixtures_dir):
    folder = copy_fixture("basic", only=("V001__create_widgets.sql", "V003__create_orders.sql"))
    hook(db.conn_id).migrate(folder)
    (folder / "V002__add_widget_color.sql").write_bytes(
        (fixtures_dir / "basic/V002__add_widget_color.sql").read_bytes()
    )

    for attempt in (lambda: hook(db.conn_id).migrate(folder), lambda: pending_migrations(db.conn_id, folder)):
        with pytest.raises(MigrationConfigError, match=r"out-of-order migration: V2 .* but V3 already is"):
            attempt()

    assert [row[0] for row in db.ledger()] == [1, 3]
    assert not db.query(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'widgets' AND column_name = 'color'"
    )


def test_statement_timeout_rolls_the_migration_back(db, fixtures_dir):
    started = time.monotonic()
    with pytest.raises(MigrationTimeout, match=r"V2 \(V002__slow_backfill.sql\) hit statement_timeout of 1 s"):
        hook(db.conn_id, statement_timeout_seconds=1).migrate(fixtures_dir / "slow_statement")
    elapsed = time.monotonic() - started
    print(f"statement timeout failed after {elapsed:.2f} s")

    assert 1.0 <= elapsed < 4, elapsed
    assert not db.exists("slow_backfill")
    assert [row[0] for row in db.ledger()] == [1]


def test_overall_deadline_rolls_the_migration_back(db, fixtures_dir):
    """Six 1 s statements each pass a 2 s statement_timeout; only the 2.5 s deadline stops V002."""
    started = time.monotonic()
    with pytest.raises(MigrationTimeout, match=r"V2 \(V002__many_short_steps.sql\) hit the overall deadline of 2.5 s"):
        hook(db.conn_id, statement_timeout_seconds=2, deadline_seconds=2.5).migrate(fixtures_dir / "slow_total")
    elapsed = time.monotonic() - started
    print(f"deadline failed after {elapsed:.2f} s")

    assert 2.5 <= elapsed < 5, elapsed
    assert not db.exists("many_short_steps")
    assert [row[0] for row in db.ledger()] == [1]
    assert db.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE '%%pg_sleep%%' "
                    "AND pid <> pg_backend_pid()", (db.name,)) == [(0,)]  # fmt: skip


def test_plan_only_lists_pending_and_changes_nothing(db, copy_fixture, fixtures_dir):
    folder = copy_fixture("basic")
    everything = pending_migrations(db.conn_id, folder)
    assert [(m["version"], m["description"]) for m in everything] == [
        (1, "create widgets"), (2, "add widget color"), (3, "create orders"),
    ]  # fmt: skip
    assert everything[0]["checksum"] == sha256(folder / "V001__create_widgets.sql")
    assert not db.exists("bluegreen_schema_migrations") and not db.exists("widgets")

    hook(db.conn_id).migrate(copy_fixture("basic", only=("V001__create_widgets.sql",), dest="v1_only"))
    before = db.ledger()
    assert [m["version"] for m in pending_migrations(db.conn_id, folder)] == [2, 3]
    assert db.ledger() == before and not db.exists("orders")


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("does_not_exist", "does not exist or is not a directory"),
        ("bad_name", "bad migration file name 'V2_add_color.sql'"),
        ("duplicate", "duplicate migration version 1: 'V001__create_widgets.sql' and 'V01__create_widgets_again.sql'"),
    ],
)
def test_bad_folders_are_refused_before_connecting(db, fixtures_dir, unreachable_conn, folder, message):
    # The unreachable connection would raise OperationalError if anything tried to connect first.
    for conn_id in (unreachable_conn, db.conn_id):
        with pytest.raises(MigrationConfigError, match=message):
            hook(conn_id).migrate(fixtures_dir / folder)
        with pytest.raises(MigrationConfigError, match=message):
            pending_migrations(conn_id, fixtures_dir / folder)
    assert not db.exists("bluegreen_schema_migrations") and not db.exists("widgets")


def test_bad_settings_are_refused_before_connecting(unreachable_conn):
    with pytest.raises(MigrationConfigError, match="deadline_seconds must be a positive number"):
        hook(unreachable_conn, deadline_seconds=0)
    with pytest.raises(MigrationConfigError, match="ledger_table 'x; DROP TABLE y' is not a plain"):
        hook(unreachable_conn, ledger_table="x; DROP TABLE y")


def test_unknown_connection_is_refused(fixtures_dir):
    with pytest.raises(Exception, match="bg_no_such_conn"):
        hook("bg_no_such_conn").migrate(fixtures_dir / "basic")


def test_migration_that_commits_itself_is_reported(db, fixtures_dir):
    with pytest.raises(MigrationConfigError, match=r"V1 .* ended its own transaction"):
        hook(db.conn_id).migrate(fixtures_dir / "self_commit")
    # A file-level COMMIT cannot be undone by the runner; it refuses to record the version instead.
    assert db.ledger() == [] and db.exists("committed_early")


def test_custom_ledger_table_in_its_own_schema(db, fixtures_dir):
    db.query("CREATE SCHEMA ops; SELECT 1")
    hook(db.conn_id, ledger_table="ops.schema_history").migrate(fixtures_dir / "basic")
    assert [row[0] for row in db.ledger("ops.schema_history")] == [1, 2, 3]
    assert not db.exists("bluegreen_schema_migrations")


def test_lego_api_migrations_apply_once_and_are_rerunnable(db, lego_api_dir):
    first = hook(db.conn_id).migrate(lego_api_dir)
    again = hook(db.conn_id).migrate(lego_api_dir)

    assert [a["version"] for a in first["applied"]] == [1, 2, 3] and again["skipped"] == [1, 2, 3]
    assert all(db.exists(t) for t in ("mocs", "gallery_images", "wishlist_items"))
    # Idempotent-friendly: running every file again by hand (as a repair would) changes nothing and fails not.
    conn = db.connect()
    try:
        for path in sorted(lego_api_dir.glob("V*.sql")):
            with conn.cursor() as cur:
                cur.execute(path.read_text())
    finally:
        conn.close()
    db.query("INSERT INTO wishlist_items (user_id, set_number, title) VALUES ('u1', '10294', 'Titanic') RETURNING 1")
    assert db.query("SELECT priority FROM wishlist_items") == [(0,)]
    with pytest.raises(psycopg2.errors.CheckViolation):
        db.query("UPDATE wishlist_items SET priority = 9 RETURNING 1")

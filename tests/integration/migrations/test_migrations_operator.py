"""RunMigrationsOperator: parse-time validation and XCom-shaped results from a real database."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.operators.migrations import RunMigrationsOperator

pytestmark = pytest.mark.postgres

RUN_ID = "manual__2025-11-22T10:00:00+00:00"


def context(try_number: int = 1) -> dict:
    return {"run_id": RUN_ID, "ti": SimpleNamespace(run_id=RUN_ID, try_number=try_number)}


def operator(**kwargs) -> RunMigrationsOperator:
    with DAG("lego_api_blue_green", schedule=None):
        return RunMigrationsOperator(task_id="migrate", postgres_conn_id="bg_test_db", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"migrations_folder": "/x", "command": "pnpm db:migrate"}, "exactly one of migrations_folder or command"),
        ({}, "exactly one of migrations_folder or command"),
        ({"command": "pnpm db:migrate", "plan_only": True}, "plan_only needs migrations_folder"),
        ({"migrations_folder": "/x", "deadline_seconds": -1}, "deadline_seconds must be a positive number"),
        ({"migrations_folder": "/x", "ledger_table": "ledger; DROP TABLE mocs"}, "is not a plain"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        operator(**kwargs)


def test_execute_applies_and_returns_xcom_shaped_result(db, fixtures_dir):
    result = operator(migrations_folder=str(fixtures_dir / "basic")).execute(context())

    assert json.loads(json.dumps(result)) == result
    assert result["mode"] == "folder" and result["skipped"] == [] and result["pending"] == []
    assert [(a["version"], a["description"]) for a in result["applied"]] == [
        (1, "create widgets"), (2, "add widget color"), (3, "create orders"),
    ]  # fmt: skip
    assert isinstance(result["lock_wait_ms"], int)
    assert {row[-1] for row in db.ledger()} == {f"lego_api_blue_green/migrate/{RUN_ID}#1"}

    retry = operator(migrations_folder=str(fixtures_dir / "basic")).execute(context(try_number=2))
    assert retry["applied"] == [] and retry["skipped"] == [1, 2, 3]
    assert {row[-1] for row in db.ledger()} == {f"lego_api_blue_green/migrate/{RUN_ID}#1"}


def test_plan_only_execute_lists_pending_without_applying(db, lego_api_dir):
    result = operator(migrations_folder=str(lego_api_dir), plan_only=True).execute(context())

    assert json.loads(json.dumps(result)) == result
    assert result["mode"] == "plan" and result["applied"] == []
    assert [(p["version"], p["description"]) for p in result["pending"]] == [
        (1, "create mocs"), (2, "create gallery images"), (3, "add wishlist priority"),
    ]  # fmt: skip
    assert all(len(p["checksum"]) == 64 for p in result["pending"])
    assert not db.exists("bluegreen_schema_migrations") and not db.exists("mocs")


def test_command_execute_returns_command_result(db):
    result = operator(command='psql "$DATABASE_URL" -c "CREATE TABLE via_operator (id int)"').execute(context())
    assert result["mode"] == "command" and result["exit_code"] == 0
    assert json.loads(json.dumps(result)) == result
    assert db.exists("via_operator")


def test_unfixable_errors_fail_without_retry(db, unreachable_conn, fixtures_dir):
    op = operator(migrations_folder=str(fixtures_dir / "bad_name"))
    op.postgres_conn_id = unreachable_conn
    with pytest.raises(AirflowFailException, match="bad migration file name"):
        op.execute(context())


def test_connection_and_folder_are_templated(db, lego_api_dir):
    with DAG("lego_api_blue_green", schedule=None):
        op = RunMigrationsOperator(
            task_id="migrate", postgres_conn_id="{{ params.conn }}", migrations_folder="{{ params.folder }}"
        )
    op.render_template_fields({"params": {"conn": db.conn_id, "folder": str(lego_api_dir)}})
    assert [a["version"] for a in op.execute(context())["applied"]] == [1, 2, 3]
    assert db.exists("wishlist_items")


def test_command_variables_are_templated_and_checked_once_rendered(db, tmp_path, monkeypatch, unreachable_conn):
    monkeypatch.setenv("NODE_OPTIONS", "--max-old-space-size=256")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "canary-aws-secret-access-key")
    dump = tmp_path / "env.txt"
    with DAG("lego_api_blue_green", schedule=None, render_template_as_native_obj=True):
        op = RunMigrationsOperator(
            task_id="migrate",
            postgres_conn_id=db.conn_id,
            command=f'printf "%s|%s|%s" "$APP_MODE" "$NODE_OPTIONS" "$AWS_SECRET_ACCESS_KEY" > {dump}',
            env={"APP_MODE": "{{ params.mode }}"},
            pass_env="{{ params.names }}",
        )
    op.render_template_fields({"params": {"mode": "migrate", "names": ["NODE_OPTIONS"]}})
    assert op.execute(context())["exit_code"] == 0
    assert dump.read_text() == "migrate|--max-old-space-size=256|"

    with DAG("lego_api_blue_green", schedule=None, render_template_as_native_obj=True):
        bad = RunMigrationsOperator(
            task_id="migrate", postgres_conn_id=unreachable_conn, command="true", pass_env="{{ params.names }}"
        )
    bad.render_template_fields({"params": {"names": ["AIRFLOW_CONN_AWS_DEFAULT"]}})
    with pytest.raises(AirflowFailException, match=r"^pass_env: AIRFLOW_CONN_AWS_DEFAULT is Airflow's own setting"):
        bad.execute(context())


def test_a_failing_migration_is_a_verdict_not_retried(db, fixtures_dir):
    # The same SQL fails again on every try: the stage fails at once and the rollback follows.
    with pytest.raises(AirflowFailException, match="failed and was rolled back"):
        operator(migrations_folder=str(fixtures_dir / "failing")).execute(context())
    with pytest.raises(AirflowFailException, match="exited with code 3"):
        operator(command="exit 3").execute(context())


def test_an_unreachable_database_is_retried(db, unreachable_conn, fixtures_dir):
    # The server may be back on the next try: a plain error, which the stage's retries take.
    op = operator(migrations_folder=str(fixtures_dir / "basic"))
    op.postgres_conn_id = unreachable_conn
    with pytest.raises(Exception) as err:
        op.execute(context())
    assert not isinstance(err.value, AirflowFailException), err.value

"""The deployment stage that migrates the database before any traffic reaches green (story AC 9)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.migrations import (
    DEFAULT_LEDGER,
    MigrationError,
    check_command_env,
    check_settings,
    is_transient,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from bluegreen_provider.hooks.migrations import MigrationsHook


class RunMigrationsOperator(BaseOperator):
    """
    Apply a folder of ``V<digits>__<words>.sql`` migrations, or run the project's own migration command.

    Either way the run holds an advisory lock (so a second deployment or a retried worker waits instead
    of migrating twice) and is bounded by ``statement_timeout_seconds`` and ``deadline_seconds``.
    Returns a JSON-able summary for XCom. Errors a retry cannot fix (bad files, checksum drift,
    out-of-order versions) fail the task without retrying.

    :param postgres_conn_id: Postgres connection of the application database.
    :param migrations_folder: folder of versioned SQL files; exclusive with ``command``.
    :param command: shell command of the project's tool (e.g. ``pnpm db:migrate``); it receives
        ``DATABASE_URL``, ``PGOPTIONS`` and a short allow-list of the worker's variables (``PATH``,
        ``HOME``, ``LANG``, …; see ``command_environment``), never its AWS credentials or Airflow's
        secrets. Exclusive with ``migrations_folder``.
    :param env: extra variables for ``command``, name → value (templated; a secret belongs in a
        template such as ``{{ conn.npm.password }}``, which Airflow masks in the logs).
    :param pass_env: names of worker variables ``command`` also gets (templated), e.g.
        ``["NODE_OPTIONS"]``; ``AIRFLOW__*``, ``AIRFLOW_CONN_*`` and ``AIRFLOW_VAR_*`` are refused.
    :param lock_key: advisory lock name; runs sharing it never migrate at once.
    :param lock_timeout_seconds: how long to wait for a run that holds the lock.
    :param statement_timeout_seconds: limit for each SQL statement.
    :param deadline_seconds: limit for the whole run, lock wait included.
    :param plan_only: list pending migrations and apply nothing (the dry run).
    :param ledger_table: table recording applied versions.
    """

    template_fields: Sequence[str] = ("postgres_conn_id", "migrations_folder", "command", "lock_key", "env", "pass_env")
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        postgres_conn_id: str,
        migrations_folder: str | None = None,
        command: str | None = None,
        lock_key: str = "bluegreen",
        lock_timeout_seconds: float = 60,
        statement_timeout_seconds: float = 300,
        deadline_seconds: float = 600,
        plan_only: bool = False,
        ledger_table: str = DEFAULT_LEDGER,
        env: dict[str, str] | None = None,
        pass_env: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (migrations_folder is None) == (command is None):
            raise ValueError("RunMigrationsOperator needs exactly one of migrations_folder or command")
        if plan_only and command is not None:
            raise ValueError("plan_only needs migrations_folder; a migration command cannot be planned")
        if command is None and (env or pass_env):
            raise ValueError("env and pass_env are for a migration command; SQL files run in the runner")
        check_command_env(*_untemplated(env, pass_env))  # all of it again once rendered, before connecting
        check_settings(
            lock_key=lock_key,
            lock_timeout=lock_timeout_seconds,
            statement_timeout=statement_timeout_seconds,
            deadline=deadline_seconds,
            ledger_table=ledger_table,
        )
        self.postgres_conn_id = postgres_conn_id
        self.migrations_folder = migrations_folder
        self.command = command
        self.lock_key = lock_key
        self.lock_timeout_seconds = lock_timeout_seconds
        self.statement_timeout_seconds = statement_timeout_seconds
        self.deadline_seconds = deadline_seconds
        self.plan_only = plan_only
        self.ledger_table = ledger_table
        self.env = env
        self.pass_env = pass_env

    def hook(self, applied_by: str) -> MigrationsHook:
        from bluegreen_provider.hooks.migrations import MigrationsHook  # PostgreSQL's driver, only when it runs

        return MigrationsHook(
            postgres_conn_id=self.postgres_conn_id,
            lock_key=self.lock_key,
            lock_timeout_seconds=self.lock_timeout_seconds,
            statement_timeout_seconds=self.statement_timeout_seconds,
            deadline_seconds=self.deadline_seconds,
            ledger_table=self.ledger_table,
            applied_by=applied_by,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context.get("ti")
        run_id = context.get("run_id") or getattr(ti, "run_id", "manual")
        applied_by = f"{self.dag_id}/{self.task_id}/{run_id}#{getattr(ti, 'try_number', 1)}"
        try:
            hook = self.hook(applied_by)
            if self.plan_only:
                pending = [m.as_dict() for m in hook.pending_migrations(self.migrations_folder or "")]
                for m in pending:
                    self.log.info("Pending V%s %s (sha256 %s)", m["version"], m["description"], m["checksum"])
                self.log.info("%d migration(s) pending; plan only, nothing applied", len(pending))
                return {"mode": "plan", "applied": [], "skipped": [], "pending": pending, "lock_wait_ms": 0}
            if self.command is not None:
                return hook.run_command(self.command, env=self.env, pass_env=self.pass_env)
            return hook.migrate(self.migrations_folder or "")
        except MigrationError as exc:
            if is_transient(exc):
                raise  # the stage's retries try again: the lock was busy, the connection lost
            raise AirflowFailException(str(exc)) from exc


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _untemplated(env: Any, pass_env: Any) -> tuple[Any, Any]:
    """What can be checked before rendering: names, and every value that is not a template."""
    if isinstance(env, dict):
        env = {name: "" if _is_template(value) else value for name, value in env.items()}
    elif _is_template(env):
        env = None
    if _is_template(pass_env):
        pass_env = None
    elif isinstance(pass_env, list | tuple):
        pass_env = [name for name in pass_env if not _is_template(name)]
    return env, pass_env

"""The deployment stage that migrates the database before any traffic reaches green (story AC 9)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.hooks.migrations import (
    DEFAULT_LEDGER,
    MigrationConfigError,
    MigrationsHook,
    check_settings,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


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
        ``DATABASE_URL``. Exclusive with ``migrations_folder``.
    :param lock_key: advisory lock name; runs sharing it never migrate at once.
    :param lock_timeout_seconds: how long to wait for a run that holds the lock.
    :param statement_timeout_seconds: limit for each SQL statement.
    :param deadline_seconds: limit for the whole run, lock wait included.
    :param plan_only: list pending migrations and apply nothing (the dry run).
    :param ledger_table: table recording applied versions.
    """

    template_fields: Sequence[str] = ("postgres_conn_id", "migrations_folder", "command", "lock_key")
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (migrations_folder is None) == (command is None):
            raise ValueError("RunMigrationsOperator needs exactly one of migrations_folder or command")
        if plan_only and command is not None:
            raise ValueError("plan_only needs migrations_folder; a migration command cannot be planned")
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

    def hook(self, applied_by: str) -> MigrationsHook:
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
                return hook.run_command(self.command)
            return hook.migrate(self.migrations_folder or "")
        except MigrationConfigError as exc:
            raise AirflowFailException(str(exc)) from exc

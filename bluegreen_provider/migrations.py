"""Migration files, their settings and their failures: what a migration run is, without a database.

The operator checks these at DAG parse time and the plan step reads the folder, so this module
imports no database driver; :mod:`bluegreen_provider.hooks.migrations` runs them against PostgreSQL.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bluegreen_provider.command_env import command_env_problems

FILE_NAME = re.compile(r"^V(\d+)__([A-Za-z0-9]+(?:_[A-Za-z0-9]+)*)\.sql$")
LOOKS_LIKE_MIGRATION = re.compile(r"(^[Vv]\d)|(\.sql$)", re.IGNORECASE)
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
DEFAULT_LEDGER = "bluegreen_schema_migrations"
QUERY_CANCELED, LOCK_NOT_AVAILABLE = "57014", "55P03"
IN_TRANSACTION = 2  # libpq PQTRANS_INTRANS, same value in psycopg2 and psycopg 3

MASKED = "***"


class MigrationError(Exception):
    """A migration run failed (see :func:`is_transient` for whether a retry may help)."""


class MigrationConfigError(MigrationError, ValueError):
    """The inputs or the recorded history are wrong; a retry cannot fix it."""


class MigrationLockTimeout(MigrationError):
    """Another run held the advisory lock for longer than we were willing to wait."""


class MigrationTimeout(MigrationError):
    """A statement or the whole run exceeded its time limit; the migration in progress rolled back."""


# SQLSTATE classes of a failure that may pass: connection lost, too many connections, server
# shutting down, a lock or serialization conflict with another session.
_TRANSIENT_SQLSTATES = ("08", "53", "57P", "40", LOCK_NOT_AVAILABLE)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed migration run may pass when tried again.

    The lock being busy, the connection lost or the server restarting: yes. A migration's SQL
    failing, a command exiting non-zero, a deadline, a changed history: no, the same input fails again.
    """
    if isinstance(exc, MigrationLockTimeout):
        return True
    if isinstance(exc, MigrationConfigError | MigrationTimeout):
        return False
    cause = exc.__cause__ if isinstance(exc, MigrationError) else exc
    if cause is None:
        return False
    state = _sqlstate(cause)
    if state:
        return state.startswith(_TRANSIENT_SQLSTATES)
    # No SQLSTATE: the driver lost the server before it answered (OperationalError, InterfaceError).
    return type(cause).__name__ in ("OperationalError", "InterfaceError")


@dataclass(frozen=True)
class Migration:
    """One ``V<version>__<words>.sql`` file; its checksum pins what was applied."""

    version: int
    description: str
    checksum: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "description": self.description, "checksum": self.checksum}


def load_migrations(folder: str | os.PathLike[str]) -> list[Migration]:
    """Read and validate a migrations folder without touching any database.

    Names that look like a migration (``.sql`` or ``V<digit>…``) must match ``V<digits>__<words>.sql``
    exactly, so a typo fails loudly instead of being skipped; other files (a README) are ignored.
    """
    root = Path(folder)
    if not root.is_dir():
        raise MigrationConfigError(f"migrations folder {str(root)!r} does not exist or is not a directory")
    found: dict[int, Migration] = {}
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not LOOKS_LIKE_MIGRATION.search(path.name):
            continue
        match = FILE_NAME.match(path.name)
        if not match or not path.is_file():
            raise MigrationConfigError(
                f"bad migration file name {path.name!r} in {str(root)!r}: expected V<digits>__<words>.sql, "
                "e.g. V001__create_mocs.sql"
            )
        version = int(match.group(1))
        if version in found:
            raise MigrationConfigError(
                f"duplicate migration version {version}: {found[version].path.name!r} and {path.name!r}"
            )
        found[version] = Migration(
            version=version,
            description=match.group(2).replace("_", " "),
            checksum=hashlib.sha256(path.read_bytes()).hexdigest(),
            path=path,
        )
    return [found[v] for v in sorted(found)]


def check_settings(
    *, lock_key: str, lock_timeout: float, statement_timeout: float, deadline: float, ledger_table: str
) -> None:
    """Refuse settings that could only fail later, mid-deployment; shared by the hook and the operator."""
    for name, value in (
        ("lock_timeout_seconds", lock_timeout),
        ("statement_timeout_seconds", statement_timeout),
        ("deadline_seconds", deadline),
    ):
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise MigrationConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    if not isinstance(ledger_table, str) or not TABLE_NAME.match(ledger_table):
        raise MigrationConfigError(f"ledger_table {ledger_table!r} is not a plain [schema.]table name")
    if not lock_key:
        raise MigrationConfigError("lock_key must not be empty")


def check_command_env(env: Any, pass_env: Any) -> None:
    """Refuse bad extra variables in one line, before anything connects or runs."""
    problems = command_env_problems(env, pass_env)
    if problems:
        raise MigrationConfigError("; ".join(problems))


def advisory_lock_key(lock_key: str) -> int:
    """Map a readable lock name to the signed 64-bit key ``pg_advisory_lock`` takes."""
    return int.from_bytes(hashlib.sha256(lock_key.encode()).digest()[:8], "big", signed=True)


def check_history(migrations: list[Migration], applied: dict[int, str]) -> list[Migration]:
    """Return pending migrations; refuse changed files and files slotted in below applied ones."""
    drifted = [m for m in migrations if m.version in applied and applied[m.version] != m.checksum]
    if drifted:
        m = drifted[0]
        raise MigrationConfigError(
            f"checksum drift: migration V{m.version} ({m.path.name}) was applied with checksum "
            f"{applied[m.version]} but the file now has {m.checksum}; applied migrations must never change, "
            "add a new version instead"
        )
    pending = [m for m in migrations if m.version not in applied]
    highest = max(applied, default=None)
    late = [m for m in pending if highest is not None and m.version < highest]
    if late:
        raise MigrationConfigError(
            f"out-of-order migration: V{late[0].version} ({late[0].path.name}) is not applied but V{highest} "
            "already is; renumber it above the highest applied version"
        )
    return pending


def _min_masked_length() -> int:
    """Airflow's shortest secret worth masking (``[logging] min_length_masked_secret``, 5 by default)."""
    from airflow.sdk.configuration import conf

    return conf.getint("logging", "min_length_masked_secret", fallback=5)


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)

"""Which failed migration runs the stage retries (the failure may pass) and which are verdicts."""

from __future__ import annotations

import pytest

from bluegreen_provider.migrations import (
    MigrationConfigError,
    MigrationError,
    MigrationLockTimeout,
    MigrationTimeout,
    is_transient,
)


class DriverError(Exception):
    def __init__(self, pgcode: str | None) -> None:
        super().__init__(f"driver error {pgcode}")
        self.pgcode = pgcode


class OperationalError(Exception):
    """Named as the drivers name a lost server (no SQLSTATE)."""


def wrapped(cause: BaseException) -> MigrationError:
    try:
        raise MigrationError("V2 (V002__x.sql) failed and was rolled back") from cause
    except MigrationError as err:
        return err


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (MigrationLockTimeout("busy"), True),
        (wrapped(DriverError("08006")), True),  # connection failure
        (wrapped(DriverError("57P01")), True),  # admin shutdown
        (wrapped(DriverError("53300")), True),  # too many connections
        (wrapped(DriverError("40P01")), True),  # deadlock detected
        (wrapped(DriverError("55P03")), True),  # lock not available
        (wrapped(OperationalError("server closed the connection unexpectedly")), True),
        (OperationalError("could not connect"), True),
        (wrapped(DriverError("42P07")), False),  # relation already exists: the SQL fails every time
        (wrapped(DriverError("23505")), False),  # unique violation
        (MigrationError("migration command exited with code 3"), False),
        (MigrationTimeout("hit statement_timeout"), False),
        (MigrationConfigError("checksum changed"), False),
        (ValueError("anything else"), False),
    ],
)
def test_a_retry_is_for_failures_that_may_pass(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient

"""Deployment records kept in AWS itself, as tags on the hosted zone.

Two facts must survive Airflow restarts and be visible to every DAG, CLI and person touching a
service: which run currently owns its traffic (the lock), and which slot is being retained for an
emergency rollback and until when. Keeping them beside the record they protect means the truth is
read from AWS, not from one scheduler's memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bluegreen_provider.plan import PlanError

if TYPE_CHECKING:
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.spec import DeploymentSpec

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/=+\-@]")


def _encode(fields: dict[str, str]) -> str:
    """Tag values allow only letters, digits, spaces and ``_.:/=+-@``."""
    return " ".join(f"{k}={_TAG_UNSAFE.sub('_', str(v))}" for k, v in fields.items())[:256]


def _decode(value: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in value.split() if "=" in part)


def owner_of(dag_id: str, run_id: str) -> str:
    """The lock owner string for a DAG run, in the form stored in tags."""
    return _TAG_UNSAFE.sub("_", f"{dag_id}/{run_id}")


@dataclass(frozen=True)
class LockRecord:
    """The run that owns a service's traffic from plan to promotion or rollback."""

    owner: str
    live: str
    since: str

    @property
    def dag_id(self) -> str:
        return self.owner.split("/", 1)[0]

    @property
    def run_id(self) -> str:
        return self.owner.split("/", 1)[-1]


@dataclass(frozen=True)
class RetentionRecord:
    """The previous release kept for an emergency rollback until ``until``."""

    slot: str
    until: str
    owner: str

    @property
    def until_dt(self) -> datetime:
        return datetime.fromisoformat(self.until)

    def active(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) < self.until_dt


class DeploymentRecords:
    """Read and write the lock and retention tags of one service's record."""

    def __init__(self, route53: Route53Hook, zone_id: str, spec: DeploymentSpec):
        self.route53 = route53
        self.zone_id = zone_id
        self.lock_key = spec.lock_tag_key
        self.retain_key = spec.retain_tag_key
        self.aborted_key = spec.lock_tag_key.replace(":lock:", ":aborted:", 1)

    # -- lock ---------------------------------------------------------------------------------
    def lock(self) -> LockRecord | None:
        value = self.route53.get_zone_tags(self.zone_id).get(self.lock_key)
        if not value:
            return None
        f = _decode(value)
        return LockRecord(owner=f.get("owner", "?"), live=f.get("live", "?"), since=f.get("since", ""))

    def acquire(self, owner: str, live: str, is_active: Callable[[LockRecord], bool]) -> LockRecord:
        """Take the lock for ``owner``; refuse while another active run holds it.

        A lock left by a run that is no longer queued or running (crashed, or marked failed before
        it could clean up) is taken over, since the caller has checked the traffic split is clean.
        """
        current = self.lock()
        if current and current.owner != owner and is_active(current):
            raise PlanError(
                f"another deployment owns this service: run {current.run_id} of DAG {current.dag_id} "
                f"(since {current.since}, live slot {current.live}). Wait for it to finish, or roll it "
                f"back, before starting a new one."
            )
        if current and current.owner == owner:
            return current
        record = LockRecord(owner=owner, live=live, since=datetime.now(UTC).isoformat(timespec="seconds"))
        self.route53.set_zone_tags(
            self.zone_id,
            {self.lock_key: _encode({"owner": record.owner, "live": record.live, "since": record.since})},
        )
        return record

    def release(self, owner: str) -> bool:
        """Drop the lock if ``owner`` holds it; returns whether it was dropped."""
        current = self.lock()
        if current is None or current.owner != owner:
            return False
        self.route53.remove_zone_tags(self.zone_id, [self.lock_key])
        return True

    # -- manual abort -------------------------------------------------------------------------
    def mark_aborted(self, owner: str) -> None:
        """Record that a person rolled back ``owner``'s deployment, so that run never moves traffic again."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        self.route53.set_zone_tags(self.zone_id, {self.aborted_key: _encode({"owner": owner, "at": at})})

    def aborted(self, owner: str) -> str | None:
        """When ``owner``'s deployment was rolled back by hand, if it was."""
        value = self.route53.get_zone_tags(self.zone_id).get(self.aborted_key)
        fields = _decode(value) if value else {}
        return fields.get("at") if fields.get("owner") == owner else None

    # -- retention ----------------------------------------------------------------------------
    def retention(self) -> RetentionRecord | None:
        value = self.route53.get_zone_tags(self.zone_id).get(self.retain_key)
        if not value:
            return None
        f = _decode(value)
        return RetentionRecord(slot=f.get("slot", "?"), until=f.get("until", ""), owner=f.get("owner", "?"))

    def retain(self, slot: str, until: datetime, owner: str) -> RetentionRecord:
        record = RetentionRecord(slot=slot, until=until.isoformat(timespec="seconds"), owner=owner)
        self.route53.set_zone_tags(
            self.zone_id,
            {self.retain_key: _encode({"slot": slot, "until": record.until, "owner": owner})},
        )
        return record

    def clear_retention(self, owner: str | None = None) -> bool:
        current = self.retention()
        if current is None or (owner is not None and current.owner != owner):
            return False
        self.route53.remove_zone_tags(self.zone_id, [self.retain_key])
        return True

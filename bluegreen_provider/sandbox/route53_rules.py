"""Route53 change batches as AWS documents them, patched into moto (sandbox and test fixtures alike).

moto is kinder than Route53 where a lock protocol's safety lives. Route53's ChangeResourceRecordSets
reference says: a batch is applied all or nothing; a CREATE fails if the record set exists; "to delete
a resource record set, you must specify all the same values that you specified when you created it";
and a change is ``PENDING`` until every name server has it (``INSYNC``), generally within 60 s. moto
accepts stale DELETEs, gives every change the same id and reports ``INSYNC`` at once. :func:`install`
swaps in these rules:

- changes apply in order to a copy of the zone; any invalid change rejects the whole batch with
  ``InvalidChangeBatch`` (every problem listed) and leaves the zone untouched;
- DELETE must match the current record exactly: name, type, set identifier, weight, region, failover,
  TTL and values, alias target and health check;
- CREATE fails when a record with that name, type and set identifier exists;
- every batch gets its own change id, ``PENDING`` for ``propagation_seconds`` and ``INSYNC`` after.

Every committed batch is kept in :data:`CHANGES` (when it was submitted, when it is INSYNC, and the
zone's record sets after it), so the sandbox's resolvers can serve what a name server would at any
moment of the propagation.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.core.responses import ActionResult
from moto.route53.exceptions import DnsNameInvalidForZone, Route53ClientError
from moto.route53.models import RecordSet, Route53Backend
from moto.route53.responses import Route53
from moto.route53.utils import validate_domain_name

_lock = threading.RLock()
_installed = False


@dataclass
class Settings:
    """How long a change stays PENDING; ``clock`` is wall time so several processes agree."""

    propagation_seconds: float = 0.0
    clock: Any = time.time


SETTINGS = Settings()


@dataclass(frozen=True)
class AppliedChange:
    """One committed change batch: its id, when it was submitted and when it is INSYNC."""

    change_id: str
    zone_id: str
    submitted_at: float
    insync_at: float
    comment: str
    record_sets: tuple[dict[str, Any], ...] = field(repr=False)

    def status(self, now: float) -> str:
        return "INSYNC" if now >= self.insync_at else "PENDING"


class ChangeHistory:
    """Committed batches by change id and per zone, oldest first."""

    def __init__(self) -> None:
        self._by_id: dict[str, AppliedChange] = {}
        self._by_zone: dict[str, list[AppliedChange]] = {}
        self._ids = itertools.count(1)

    def record(self, zone_id: str, comment: str, record_sets: Iterable[dict[str, Any]]) -> AppliedChange:
        now = SETTINGS.clock()
        with _lock:
            change_id = f"C{next(self._ids):013d}"
            applied = AppliedChange(
                change_id=change_id,
                zone_id=zone_id,
                submitted_at=now,
                insync_at=now + SETTINGS.propagation_seconds,
                comment=comment,
                record_sets=tuple(copy.deepcopy(list(record_sets))),
            )
            self._by_id[change_id] = applied
            self._by_zone.setdefault(zone_id, []).append(applied)
            return applied

    def get(self, change_id: str) -> AppliedChange | None:
        with _lock:
            return self._by_id.get(change_id.rsplit("/", 1)[-1])

    def zone(self, zone_id: str) -> list[AppliedChange]:
        with _lock:
            return list(self._by_zone.get(zone_id.rsplit("/", 1)[-1], []))

    def clear(self) -> None:
        with _lock:
            self._by_id.clear()
            self._by_zone.clear()


CHANGES = ChangeHistory()


# -- record identity and values, as Route53 compares them ----------------------------------------------


def _name(name: str) -> str:
    return name.strip().lower().replace("\\052", "*").rstrip(".") + "."


def _key(record: Mapping[str, Any]) -> tuple[str, str, str | None]:
    return _name(record.get("Name", "")), str(record.get("Type", "")), record.get("SetIdentifier")


def _values(record: Mapping[str, Any]) -> dict[str, Any]:
    """Every field a DELETE must repeat, normalised (moto keeps some as strings, some as ints)."""
    raw = record.get("ResourceRecords") or []
    values = sorted(v["Value"] if isinstance(v, Mapping) else str(v) for v in raw)
    alias = record.get("AliasTarget")
    alias_norm = None
    if alias:
        alias_norm = (
            str(alias.get("HostedZoneId", "")),
            _name(str(alias.get("DNSName", ""))),
            str(alias.get("EvaluateTargetHealth", False)).lower(),
        )

    def text(key: str) -> str | None:
        value = record.get(key)
        return None if value is None or value == "" else str(value)

    geo = record.get("GeoLocation")
    return {
        "Weight": text("Weight"),
        "Region": text("Region"),
        "Failover": text("Failover"),
        "MultiValueAnswer": None if record.get("MultiValueAnswer") is None else str(record["MultiValueAnswer"]).lower(),
        "GeoLocation": tuple(sorted((str(k), str(v)) for k, v in geo.items())) if geo else None,
        "TTL": text("TTL"),
        "ResourceRecords": tuple(values),
        "AliasTarget": alias_norm,
        "HealthCheckId": text("HealthCheckId"),
    }


def _describe(record: Mapping[str, Any]) -> str:
    name, rtype, set_id = _key(record)
    ident = f", set-identifier='{set_id}'" if set_id is not None else ""
    return f"[name='{name}', type='{rtype}'{ident}]"


def _as_dict(record_set: Any) -> dict[str, Any]:
    """A moto RecordSet as the request dict that would create it."""
    data: dict[str, Any] = {"Name": record_set.name, "Type": record_set.type}
    for attr, key in (
        ("ttl", "TTL"),
        ("set_identifier", "SetIdentifier"),
        ("weight", "Weight"),
        ("region", "Region"),
        ("health_check_id", "HealthCheckId"),
        ("alias_target", "AliasTarget"),
        ("failover", "Failover"),
        ("geo_location", "GeoLocation"),
        ("multi_value_answer", "MultiValueAnswer"),
    ):
        value = getattr(record_set, attr, None)
        if value is not None:
            data[key] = copy.deepcopy(value)
    if record_set.records:
        data["ResourceRecords"] = [{"Value": v} for v in record_set.records]
    return data


def plan_batch(current: list[dict[str, Any]], changes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Apply ``changes`` in order to a copy of ``current``; returns (result, problems)."""
    result = {_key(r): copy.deepcopy(r) for r in current}
    problems: list[str] = []
    for change in changes:
        action = change.get("Action")
        record = change.get("ResourceRecordSet") or {}
        key = _key(record)
        if action == "CREATE":
            if key in result:
                problems.append(f"Tried to create resource record set {_describe(record)} but it already exists")
                continue
            result[key] = copy.deepcopy(record)
        elif action == "DELETE":
            existing = result.get(key)
            if existing is None:
                problems.append(f"Tried to delete resource record set {_describe(record)} but it was not found")
                continue
            if _values(existing) != _values(record):
                problems.append(
                    f"Tried to delete resource record set {_describe(record)} but the values provided do not "
                    "match the current values"
                )
                continue
            del result[key]
        elif action == "UPSERT":
            result[key] = copy.deepcopy(record)
        else:
            problems.append(f"Invalid action {action!r} for {_describe(record)}")
    return list(result.values()), problems


# -- the moto patch -------------------------------------------------------------------------------------


def _backend_change(self: Any, zoneid: str, change_list: list[dict[str, Any]]) -> None:
    zone = self.get_hosted_zone(zoneid)
    zone_name = zone.name.strip(".").lower()
    for value in change_list:
        record = value["ResourceRecordSet"]
        validate_domain_name(record["Name"], code="InvalidChangeBatch")
        if not _name(record["Name"]).rstrip(".").endswith(zone_name):
            raise DnsNameInvalidForZone(name=record["Name"], zone_name=zone.name)
    with _lock:
        current = [_as_dict(r) for r in zone.rrsets]
        result, problems = plan_batch(current, change_list)
        if problems:
            raise InvalidChangeBatchError(problems)
        new_sets = []
        for record in result:
            stored = copy.deepcopy(record)
            if not stored["Name"].endswith("."):
                stored["Name"] += "."
            if "ResourceRecords" in stored:
                stored["ResourceRecords"] = [
                    v["Value"] if isinstance(v, Mapping) else v for v in stored["ResourceRecords"]
                ]
            new_sets.append(RecordSet(stored))
        zone.rrsets = new_sets
        for value in change_list:
            zone.rr_changes.append(copy.deepcopy(value))


def _response_change(self: Any) -> Any:
    zoneid = self._get_param("HostedZoneId")
    change_list = self._get_param("ChangeBatch.Changes")
    comment = self._get_param("ChangeBatch.Comment") or ""
    with _lock:
        self.backend.change_resource_record_sets(zoneid, change_list)
        zone = self.backend.get_hosted_zone(zoneid)
        applied = CHANGES.record(zone.resource_id, comment, [_as_dict(r) for r in zone.rrsets])
    return ActionResult(
        {
            "ChangeInfo": {
                "Id": f"/change/{applied.change_id}",
                "Status": applied.status(SETTINGS.clock()),
                "SubmittedAt": _iso(applied.submitted_at),
                "Comment": comment,
            }
        }
    )


def _response_get_change(self: Any) -> Any:
    change_id = self._get_param("Id")
    applied = CHANGES.get(change_id)
    if applied is None:
        raise Route53ClientError("NoSuchChange", f"A change with the specified change ID does not exist: {change_id}")
    return ActionResult(
        {
            "ChangeInfo": {
                "Id": f"/change/{applied.change_id}",
                "Status": applied.status(SETTINGS.clock()),
                "SubmittedAt": _iso(applied.submitted_at),
                "Comment": applied.comment,
            }
        }
    )


def _iso(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


class InvalidChangeBatchError(Route53ClientError):
    """Route53's answer to an invalid batch: HTTP 400, every problem in the message."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("InvalidChangeBatch", "; ".join(problems))
        self.problems = problems


def install(*, propagation_seconds: float | None = None) -> None:
    """Patch moto's Route53 (process-wide, idempotent); optionally set the propagation time."""
    global _installed
    if propagation_seconds is not None:
        configure(propagation_seconds=propagation_seconds)
    with _lock:
        if _installed:
            return
        Route53Backend.change_resource_record_sets = _backend_change
        Route53.change_resource_record_sets = _response_change
        Route53.get_change = _response_get_change
        _installed = True


def configure(*, propagation_seconds: float) -> None:
    """How long later changes stay PENDING (seconds, >= 0)."""
    if isinstance(propagation_seconds, bool) or not isinstance(propagation_seconds, int | float):
        raise ValueError(f"propagation_seconds must be a number, got {propagation_seconds!r}")
    if propagation_seconds < 0:
        raise ValueError(f"propagation_seconds must be >= 0, got {propagation_seconds!r}")
    SETTINGS.propagation_seconds = float(propagation_seconds)

"""Route53 hook: weighted record sets, health checks and zone tags for blue/green traffic shifting."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.sdk.exceptions import AirflowException
from botocore.exceptions import ClientError

from bluegreen_provider.hooks.retries import ROUTE53_MAX_ATTEMPTS, StandardRetriesMixin

HEALTH_CHECK_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP")
_ZONE_ID_RE = re.compile(r"^(/hostedzone/)?[A-Z0-9]+$")
# AWS limits AddTags / RemoveTagKeys to 10 entries per ChangeTagsForResource call.
_MAX_TAGS_PER_CALL = 10
# Route53 considers a health check healthy while MORE than 18 % of its health checkers report it
# healthy (Route 53 Developer Guide, "How Amazon Route 53 determines whether a health check is
# healthy"), so one region losing its path to the endpoint does not fail the check.
HEALTHY_CHECKERS_ABOVE_PCT = 18


class WeightedRecordError(ValueError):
    """A zone, record, set identifier or weight that does not match what Route53 holds."""


class HealthCheckError(ValueError):
    """A health check id or setting Route53 cannot use; raised before anything is changed."""


class ChangeConflict(RuntimeError):
    """Route53 rejected a change batch (``InvalidChangeBatch``): the records are not what it assumed.

    A batch that DELETEs records with their exact current values and CREATEs their successors is a
    compare-and-swap; this is its "lost the race" answer. Nothing was changed.
    """


class Route53ChangeTimeout(AirflowException, TimeoutError):
    """A submitted change did not reach INSYNC in time."""


@dataclass(frozen=True)
class WeightedSet:
    """One weighted record set; ``record`` is the raw ResourceRecordSet, kept so UPSERTs copy it whole."""

    set_identifier: str
    weight: int
    health_check_id: str | None
    record: dict


@dataclass(frozen=True)
class HealthCheckStatus:
    """Latest observations of one health check across the Route53 checker regions."""

    health_check_id: str
    healthy: bool
    checkers: int
    failing: int
    detail: str


def _norm_name(name: str) -> str:
    """Compare DNS names as Route53 does: case-insensitive, trailing dot optional, ``\\052`` is ``*``."""
    return name.strip().lower().replace("\\052", "*").rstrip(".") + "."


def _reversed(name: str) -> str:
    """A DNS name in Route53's listing order: labels reversed (``api.example.com.`` → ``com.example.api``)."""
    return ".".join(reversed(name.rstrip(".").split(".")))


def _bare_zone_id(zone_id: str) -> str:
    return zone_id.strip().rsplit("/", 1)[-1]


def _error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


class Route53Hook(StandardRetriesMixin, AwsBaseHook):
    """
    Thin wrapper around :external+boto3:py:class:`boto3.client("route53") <Route53.Client>`.

    Route53 is a global service, so ``region_name`` only matters for credentials and endpoints.
    Calls use botocore ``standard`` retries with :data:`~bluegreen_provider.hooks.retries.ROUTE53_MAX_ATTEMPTS`
    attempts (Route53 throttles routinely); a connection's ``config_kwargs`` override them.
    Every mutating method validates its input against the live zone first and raises a
    :class:`WeightedRecordError` / :class:`HealthCheckError` before any change is submitted.

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.
    """

    max_attempts = ROUTE53_MAX_ATTEMPTS

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "route53"
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ zones

    def _zone_names(self) -> list[str]:
        zones = []
        for page in self.conn.get_paginator("list_hosted_zones").paginate():
            for zone in page["HostedZones"]:
                private = " private" if zone.get("Config", {}).get("PrivateZone") else ""
                zones.append(f"{zone['Name']} ({_bare_zone_id(zone['Id'])}{private})")
        return zones

    @contextmanager
    def _zone_errors(self, zone_id: str) -> Iterator[None]:
        """Turn NoSuchHostedZone into a WeightedRecordError that lists the zones that do exist."""
        try:
            yield
        except ClientError as err:
            if _error_code(err) in ("NoSuchHostedZone", "InvalidInput") and "zone" in str(err).lower():
                raise WeightedRecordError(
                    f"Hosted zone {zone_id!r} not found; existing zones: {self._zone_names() or 'none'}"
                ) from err
            raise

    def _require_zone(self, zone_id: str) -> str:
        bare = _bare_zone_id(zone_id)
        with self._zone_errors(zone_id):
            self.conn.get_hosted_zone(Id=bare)
        return bare

    def resolve_zone_id(self, zone: str) -> str:
        """
        Resolve a hosted zone id or DNS name to the bare zone id (``Z123...``).

        :param zone: ``"Z123"``, ``"/hostedzone/Z123"`` or a DNS name with or without trailing dot.
        :return: the bare hosted zone id.
        """
        if not isinstance(zone, str) or not zone.strip():
            raise WeightedRecordError(f"Hosted zone must be a non-empty string, got {zone!r}")
        if _ZONE_ID_RE.match(zone.strip()):
            return self._require_zone(zone)
        wanted = _norm_name(zone)
        matches = []
        for page in self.conn.get_paginator("list_hosted_zones").paginate():
            matches += [z for z in page["HostedZones"] if _norm_name(z["Name"]) == wanted]
        if not matches:
            raise WeightedRecordError(f"No hosted zone named {zone!r}; existing zones: {self._zone_names() or 'none'}")
        if len(matches) > 1:
            found = [
                f"{_bare_zone_id(z['Id'])} ({'private' if z.get('Config', {}).get('PrivateZone') else 'public'})"
                for z in matches
            ]
            raise WeightedRecordError(
                f"Hosted zone name {zone!r} is ambiguous, it matches {found}; pass the zone id instead"
            )
        return _bare_zone_id(matches[0]["Id"])

    # ------------------------------------------------------- weighted records

    def get_weighted_sets(self, zone_id: str, record_name: str, record_type: str = "A") -> dict[str, WeightedSet]:
        """
        Read every weighted set of one record name and type, keyed by set identifier.

        :param zone_id: hosted zone id (bare or ``/hostedzone/`` form).
        :param record_name: record DNS name; case and trailing dot are ignored.
        :param record_type: record type, e.g. ``"A"`` or ``"AAAA"``.
        """
        bare = _bare_zone_id(zone_id)
        wanted, rtype = _norm_name(record_name), record_type.upper()
        found: dict[str, WeightedSet] = {}
        other_sets: list[str] = []
        passed = False
        with self._zone_errors(zone_id):
            for page in self.conn.get_paginator("list_resource_record_sets").paginate(HostedZoneId=bare):
                for rec in page["ResourceRecordSets"]:
                    same = _norm_name(rec["Name"]) == wanted and rec["Type"] == rtype
                    if same and "SetIdentifier" in rec and "Weight" in rec:
                        # A set may repeat across a page boundary; the identifier is unique.
                        found[rec["SetIdentifier"]] = WeightedSet(
                            set_identifier=rec["SetIdentifier"],
                            weight=int(rec["Weight"]),
                            health_check_id=rec.get("HealthCheckId"),
                            record=rec,
                        )
                    elif same:
                        other_sets.append(rec.get("SetIdentifier", "<simple record>"))
                    elif found or other_sets:
                        # Route53 lists records sorted by name and type: ours are all behind us.
                        passed = True
                        break
                if passed:
                    break
        if not found:
            if not other_sets:
                self._require_record_in_zone(bare, record_name)
            detail = f" (found non-weighted sets {other_sets})" if other_sets else ""
            raise WeightedRecordError(f"No weighted {rtype} record sets named {record_name!r} in zone {bare}{detail}")
        return found

    def _require_record_in_zone(self, zone_id: str, record_name: str) -> None:
        """A record can only live under its zone's name: say so when the zone given is another one."""
        with self._zone_errors(zone_id):
            zone_name = self.conn.get_hosted_zone(Id=zone_id)["HostedZone"]["Name"]
        wanted, zone = _norm_name(record_name), _norm_name(zone_name)
        if wanted != zone and not wanted.endswith(f".{zone}"):
            raise WeightedRecordError(
                f"record {record_name!r} is not in hosted zone {zone_id} ({zone_name}); give the zone that holds it"
            )

    def get_record_sets(self, zone_id: str, names: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[dict]]:
        """
        Read every record set of the given (name, type) pairs in one listing pass.

        Route53 lists a zone sorted by name with the labels reversed, so a record and its children
        (``api.example.com`` and ``_bluegreen.api.example.com``) are next to each other: starting at
        the first and stopping once past the last costs one call in practice.

        :param zone_id: hosted zone id.
        :param names: (DNS name, record type) pairs.
        :return: the raw ResourceRecordSets per pair (empty list when absent).
        """
        wanted = {(_norm_name(n), t.upper()): (n, t) for n, t in names}
        found: dict[tuple[str, str], list[dict]] = {pair: [] for pair in wanted.values()}
        order = sorted(wanted, key=lambda k: (_reversed(k[0]), k[1]))
        start_name, start_type = wanted[order[0]]
        last = (_reversed(order[-1][0]), order[-1][1])
        bare = _bare_zone_id(zone_id)
        with self._zone_errors(zone_id):
            paginator = self.conn.get_paginator("list_resource_record_sets")
            pages = paginator.paginate(
                HostedZoneId=bare, StartRecordName=start_name, StartRecordType=start_type.upper()
            )
            for page in pages:
                past = False
                for rec in page["ResourceRecordSets"]:
                    key = (_norm_name(rec["Name"]), rec["Type"])
                    if key in wanted:
                        found[wanted[key]].append(rec)
                    elif (_reversed(key[0]), key[1]) > last:
                        past = True
                        break
                if past:
                    break
        return found

    def change_batch(self, zone_id: str, changes: Sequence[tuple[str, dict]], *, comment: str) -> str:
        """
        Submit one change batch; Route53 applies it all or nothing.

        .. seealso::
            - :external+boto3:py:meth:`Route53.Client.change_resource_record_sets`

        :param zone_id: hosted zone id.
        :param changes: (``"CREATE"`` | ``"DELETE"`` | ``"UPSERT"``, ResourceRecordSet) in order.
        :param comment: ChangeBatch comment, shown in CloudTrail (cut to Route53's 256 characters).
        :return: the change id.
        :raises ChangeConflict: Route53 rejected the batch (a DELETE of values that are no longer
            current, a CREATE of a record that exists); nothing was changed.
        """
        try:
            response = self.conn.change_resource_record_sets(
                HostedZoneId=_bare_zone_id(zone_id),
                ChangeBatch={
                    "Comment": comment[:256],
                    "Changes": [{"Action": a, "ResourceRecordSet": r} for a, r in changes],
                },
            )
        except ClientError as err:
            if _error_code(err) == "InvalidChangeBatch":
                raise ChangeConflict(err.response.get("Error", {}).get("Message", str(err))) from err
            raise
        return _bare_zone_id(response["ChangeInfo"]["Id"])

    @staticmethod
    def _require_sets(sets: Mapping[str, WeightedSet], wanted: Sequence[str], record_name: str) -> None:
        missing = [s for s in wanted if s not in sets]
        if missing:
            raise WeightedRecordError(
                f"Weighted set(s) {missing} not found for {record_name!r}; existing sets: {sorted(sets)}"
            )

    def get_split(
        self, zone_id: str, record_name: str, record_type: str, set_identifiers: Sequence[str]
    ) -> dict[str, int]:
        """
        Read the current weight of each named set.

        :param zone_id: hosted zone id.
        :param record_name: record DNS name.
        :param record_type: record type.
        :param set_identifiers: the sets to report, e.g. ``["blue", "green"]``.
        """
        sets = self.get_weighted_sets(zone_id, record_name, record_type)
        self._require_sets(sets, set_identifiers, record_name)
        return {s: sets[s].weight for s in set_identifiers}

    def _upsert(self, zone_id: str, records: list[dict], comment: str) -> str:
        response = self.conn.change_resource_record_sets(
            HostedZoneId=_bare_zone_id(zone_id),
            ChangeBatch={
                "Comment": comment,
                "Changes": [{"Action": "UPSERT", "ResourceRecordSet": r} for r in records],
            },
        )
        return _bare_zone_id(response["ChangeInfo"]["Id"])

    def set_split(
        self,
        zone_id: str,
        record_name: str,
        record_type: str,
        weights: Mapping[str, int],
        *,
        comment: str,
        allow_all_zero: bool = False,
    ) -> str | None:
        """
        Set the weights of existing sets in one atomic ChangeBatch, keeping every other field.

        .. seealso::
            - :external+boto3:py:meth:`Route53.Client.change_resource_record_sets`

        :param zone_id: hosted zone id.
        :param record_name: record DNS name.
        :param record_type: record type.
        :param weights: new weight (0..255) per set identifier; sets not named keep their weight.
        :param comment: ChangeBatch comment, shown in CloudTrail.
        :param allow_all_zero: permit a result where every set weighs 0 (Route53 then splits evenly).
        :return: the change id, or None when the weights already match and nothing was sent.
        """
        if not isinstance(weights, Mapping) or not weights:
            raise WeightedRecordError(f"Weights must be a non-empty mapping of set -> weight, got {weights!r}")
        for name, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 255:
                raise WeightedRecordError(f"Weight for set {name!r} must be an int in 0..255, got {weight!r}")
        sets = self.get_weighted_sets(zone_id, record_name, record_type)
        self._require_sets(sets, list(weights), record_name)
        result = {s: weights.get(s, ws.weight) for s, ws in sets.items()}
        if not allow_all_zero and not any(result.values()):
            raise WeightedRecordError(
                f"Weights {dict(weights)} would leave every set of {record_name!r} at 0 ({result}); "
                "pass allow_all_zero=True if that is intended"
            )
        changed = [s for s in weights if sets[s].weight != weights[s]]
        if not changed:
            self.log.info("Weights of %s %s already %s; no change", record_name, record_type, result)
            return None
        records = []
        for s in changed:
            rec = copy.deepcopy(sets[s].record)
            rec["Weight"] = weights[s]
            records.append(rec)
        change_id = self._upsert(zone_id, records, comment)
        self.log.info("Submitted change %s: %s %s -> %s", change_id, record_name, record_type, result)
        return change_id

    def set_health_check(
        self,
        zone_id: str,
        record_name: str,
        record_type: str,
        set_identifier: str,
        health_check_id: str | None,
        *,
        comment: str,
    ) -> str | None:
        """
        Attach a health check to one weighted set (or detach it with ``None``), keeping all else.

        :param zone_id: hosted zone id.
        :param record_name: record DNS name.
        :param record_type: record type.
        :param set_identifier: the set to change.
        :param health_check_id: health check to attach, or None to detach.
        :param comment: ChangeBatch comment.
        :return: the change id, or None when the set already has this health check.
        """
        sets = self.get_weighted_sets(zone_id, record_name, record_type)
        self._require_sets(sets, [set_identifier], record_name)
        current = sets[set_identifier]
        if current.health_check_id == health_check_id:
            return None
        if health_check_id is not None:
            self._require_health_check(health_check_id)
        rec = copy.deepcopy(current.record)
        if health_check_id is None:
            rec.pop("HealthCheckId", None)
        else:
            rec["HealthCheckId"] = health_check_id
        return self._upsert(zone_id, [rec], comment)

    # ---------------------------------------------------------------- changes

    def get_change_status(self, change_id: str) -> str:
        """
        Return ``"PENDING"`` or ``"INSYNC"`` for a submitted change.

        :param change_id: id returned by :meth:`set_split` (bare or ``/change/`` form).
        """
        return self.conn.get_change(Id=_bare_zone_id(change_id))["ChangeInfo"]["Status"]

    def wait_for_change(self, change_id: str, *, timeout_seconds: float = 300, poll_seconds: float = 5) -> None:
        """
        Block until a change is INSYNC on all Route53 name servers.

        :param change_id: id returned by :meth:`set_split`.
        :param timeout_seconds: give up after this long and raise :class:`Route53ChangeTimeout`.
        :param poll_seconds: delay between ``GetChange`` calls.
        """
        deadline = time.monotonic() + timeout_seconds
        while True:
            status = self.get_change_status(change_id)
            if status == "INSYNC":
                return
            if time.monotonic() + poll_seconds > deadline:
                raise Route53ChangeTimeout(f"Route53 change {change_id} still {status} after {timeout_seconds}s")
            time.sleep(poll_seconds)

    # ---------------------------------------------------------- health checks

    def _require_health_check(self, health_check_id: str) -> dict:
        try:
            return self.conn.get_health_check(HealthCheckId=health_check_id)["HealthCheck"]
        except ClientError as err:
            if _error_code(err) == "NoSuchHealthCheck":
                raise HealthCheckError(f"Health check {health_check_id!r} does not exist") from err
            raise

    def health_check_caller_reference(self, health_check_id: str) -> str | None:
        """The CallerReference a health check was created with; None if it no longer exists."""
        try:
            return self._require_health_check(health_check_id)["CallerReference"]
        except HealthCheckError:
            return None

    def _find_health_check(self, caller_reference: str) -> dict | None:
        for page in self.conn.get_paginator("list_health_checks").paginate():
            for check in page["HealthChecks"]:
                if check["CallerReference"] == caller_reference:
                    return check
        return None

    def ensure_health_check(
        self,
        *,
        caller_reference: str,
        fqdn: str,
        path: str = "/health",
        port: int = 443,
        check_type: str = "HTTPS",
        request_interval: int = 30,
        failure_threshold: int = 3,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """
        Create a health check once per ``caller_reference``; later calls reuse and update it.

        Latency is measured and SNI enabled (HTTPS types) as the deployment story asks.
        Type and request interval cannot change after creation, so a mismatch raises.

        :param caller_reference: stable unique key, e.g. ``"bluegreen-api-green"``.
        :param fqdn: host name Route53 checks.
        :param path: resource path (HTTP types only).
        :param port: TCP port.
        :param check_type: one of HTTP, HTTPS, HTTP_STR_MATCH, HTTPS_STR_MATCH, TCP.
        :param request_interval: 10 or 30 seconds.
        :param failure_threshold: consecutive failures (1..10) before unhealthy.
        :param tags: tags added to the health check (a ``Name`` tag shows in the console).
        :return: the health check id.
        """
        if check_type not in HEALTH_CHECK_TYPES:
            raise HealthCheckError(f"check_type {check_type!r} is not one of {HEALTH_CHECK_TYPES}")
        if request_interval not in (10, 30):
            raise HealthCheckError(f"request_interval must be 10 or 30, got {request_interval!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise HealthCheckError(f"port must be an int in 1..65535, got {port!r}")
        if (
            isinstance(failure_threshold, bool)
            or not isinstance(failure_threshold, int)
            or not (1 <= failure_threshold <= 10)
        ):
            raise HealthCheckError(f"failure_threshold must be an int in 1..10, got {failure_threshold!r}")
        if check_type != "TCP" and not path.startswith("/"):
            raise HealthCheckError(f"path must start with '/', got {path!r}")
        if not fqdn or not caller_reference:
            raise HealthCheckError(f"fqdn and caller_reference are required, got {fqdn!r}, {caller_reference!r}")
        https = check_type.startswith("HTTPS")
        existing = self._find_health_check(caller_reference)
        if existing is None:
            config: dict[str, Any] = {
                "Type": check_type,
                "FullyQualifiedDomainName": fqdn,
                "Port": port,
                "RequestInterval": request_interval,
                "FailureThreshold": failure_threshold,
                "MeasureLatency": True,
            }
            if check_type != "TCP":
                config["ResourcePath"] = path
            if https:
                config["EnableSNI"] = True
            check_id = self.conn.create_health_check(CallerReference=caller_reference, HealthCheckConfig=config)[
                "HealthCheck"
            ]["Id"]
            self.log.info("Created health check %s for %s:%s%s", check_id, fqdn, port, path)
        else:
            check_id = existing["Id"]
            cfg = existing["HealthCheckConfig"]
            fixed = {"Type": check_type, "RequestInterval": request_interval}
            clash = {k: (cfg.get(k), v) for k, v in fixed.items() if cfg.get(k) != v}
            if clash:
                raise HealthCheckError(
                    f"Health check {check_id} ({caller_reference!r}) cannot change {clash} (have, want); "
                    "delete it or use a new caller_reference"
                )
            wanted = {"FullyQualifiedDomainName": fqdn, "Port": port, "FailureThreshold": failure_threshold}
            if check_type != "TCP":
                wanted["ResourcePath"] = path
            update = {k: v for k, v in wanted.items() if cfg.get(k) != v}
            if update:
                self.conn.update_health_check(
                    HealthCheckId=check_id, HealthCheckVersion=existing["HealthCheckVersion"], **update
                )
                self.log.info("Updated health check %s: %s", check_id, update)
        if tags:
            have = self.conn.list_tags_for_resource(ResourceType="healthcheck", ResourceId=check_id)
            current = {t["Key"]: t["Value"] for t in have["ResourceTagSet"].get("Tags", [])}
            add = [{"Key": k, "Value": v} for k, v in tags.items() if current.get(k) != v]
            if add:
                self.conn.change_tags_for_resource(ResourceType="healthcheck", ResourceId=check_id, AddTags=add)
        return check_id

    def health_check_status(self, health_check_id: str) -> HealthCheckStatus:
        """
        Summarise the latest checker observations by Route53's own rule: healthy while more than
        :data:`HEALTHY_CHECKERS_ABOVE_PCT` % of the checkers report success.

        A single region that cannot reach the endpoint (1 of 8 failing) is a blip Route53 itself
        ignores; judging on any failure would roll back a good release. ``checkers == 0`` means
        Route53 has no observations yet (``healthy`` is then True): callers deciding on promotion
        should treat that as "not yet known".

        .. seealso::
            - :external+boto3:py:meth:`Route53.Client.get_health_check_status`

        :param health_check_id: the health check to read (attached to a record or not).
        """
        try:
            response = self.conn.get_health_check_status(HealthCheckId=health_check_id)
        except ClientError as err:
            if _error_code(err) == "NoSuchHealthCheck":
                raise HealthCheckError(f"Health check {health_check_id!r} does not exist") from err
            raise
        observations = response["HealthCheckObservations"]
        failures = [
            f"{o.get('Region')}: {o.get('StatusReport', {}).get('Status', '')}"
            for o in observations
            if not o.get("StatusReport", {}).get("Status", "").startswith("Success")
        ]
        checkers = len(observations)
        healthy = checkers == 0 or 100 * (checkers - len(failures)) > HEALTHY_CHECKERS_ABOVE_PCT * checkers
        if failures:
            verdict = "healthy" if healthy else "unhealthy"
            detail = (
                f"{len(failures)} of {checkers} checkers failing ({'; '.join(failures)}); {verdict} by Route53's "
                f"rule (>{HEALTHY_CHECKERS_ABOVE_PCT} % healthy)"
            )
        elif checkers:
            detail = f"{checkers} of {checkers} checkers report success"
        else:
            detail = "no checker has reported yet"
        return HealthCheckStatus(
            health_check_id=health_check_id,
            healthy=healthy,
            checkers=checkers,
            failing=len(failures),
            detail=detail,
        )

    def delete_health_check(self, health_check_id: str) -> bool:
        """
        Delete a health check; safe to repeat.

        :param health_check_id: the health check to delete.
        :return: True if it was deleted, False if it was already gone.
        """
        try:
            self._require_health_check(health_check_id)
            self.conn.delete_health_check(HealthCheckId=health_check_id)
        except HealthCheckError:
            return False
        except ClientError as err:
            if _error_code(err) == "NoSuchHealthCheck":
                return False
            raise
        return True

    # -------------------------------------------------------------- zone tags

    def get_zone_tags(self, zone_id: str) -> dict[str, str]:
        """
        Read a hosted zone's tags (the deployment lock and retention record live here).

        :param zone_id: hosted zone id.
        """
        bare = self._require_zone(zone_id)
        response = self.conn.list_tags_for_resource(ResourceType="hostedzone", ResourceId=bare)
        return {t["Key"]: t["Value"] for t in response["ResourceTagSet"].get("Tags", [])}

    def set_zone_tags(self, zone_id: str, tags: Mapping[str, str]) -> None:
        """
        Add or overwrite up to 10 tags on a hosted zone in one call.

        :param zone_id: hosted zone id.
        :param tags: tag key -> value.
        """
        bad = {k: v for k, v in tags.items() if not isinstance(k, str) or not k or not isinstance(v, str)}
        if bad:
            raise WeightedRecordError(f"Zone tags must be non-empty str keys with str values, got {bad!r}")
        if len(tags) > _MAX_TAGS_PER_CALL:
            raise WeightedRecordError(
                f"At most {_MAX_TAGS_PER_CALL} zone tags per call, got {len(tags)}: {sorted(tags)}"
            )
        if not tags:
            return
        bare = _bare_zone_id(zone_id)
        with self._zone_errors(zone_id):
            self.conn.change_tags_for_resource(
                ResourceType="hostedzone",
                ResourceId=bare,
                AddTags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )

    def remove_zone_tags(self, zone_id: str, keys: Sequence[str]) -> None:
        """
        Remove tags from a hosted zone; keys that are not set are ignored.

        :param zone_id: hosted zone id.
        :param keys: tag keys to remove (at most 10).
        """
        if isinstance(keys, str) or not all(isinstance(k, str) and k for k in keys):
            raise WeightedRecordError(f"Tag keys must be a sequence of non-empty strings, got {keys!r}")
        if len(keys) > _MAX_TAGS_PER_CALL:
            raise WeightedRecordError(f"At most {_MAX_TAGS_PER_CALL} tag keys per call, got {list(keys)}")
        if not keys:
            return
        with self._zone_errors(zone_id):
            self.conn.change_tags_for_resource(
                ResourceType="hostedzone", ResourceId=_bare_zone_id(zone_id), RemoveTagKeys=list(keys)
            )

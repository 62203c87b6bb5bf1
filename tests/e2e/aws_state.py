"""The AWS state a deployment could change, read back from moto, to compare before and after a run.

``read_aws_state()`` is all of it as canonical JSON bytes (compare exactly); ``diff_aws_state(before,
after)`` says which paths changed, so a failed comparison shows what moved, e.g.
``~ lambda/lego-api-moc/aliases/production-green/FunctionVersion: '1' -> '2'``. Everything is keyed by
what names it (a record set by name, type and set identifier, a version by its number, an alarm by its
name), so a path means the same thing before and after whatever order AWS lists things in.

The chaos suite reads moto under ``mock_aws`` (no ``clients``: default boto3 clients); the e2e tests
read the sandbox's moto server (``clients=sandbox.clients()``).
"""

from __future__ import annotations

import fnmatch
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bluegreen_provider.state import STATE_PREFIX, DeploymentState, decode_txt

if TYPE_CHECKING:
    from bluegreen_provider.sandbox import Sandbox

REGION = "us-east-1"
Clients = Callable[[str], Any]
ABSENT = "<absent>"


# -- reading ----------------------------------------------------------------------------------------
def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    found: list[Any] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        found += page.get(key, [])
    return found


@functools.cache
def _default_client(service: str) -> Any:
    """One boto3 client per service for reading moto back (moto answers whichever mock is active)."""
    import boto3

    return boto3.client(service, region_name=REGION)


def _keyed(items: Iterable[Any], key: Callable[[Any], str]) -> dict[str, Any]:
    """``items`` by their name; a repeated name (AWS allows none of these) keeps both, numbered."""
    out: dict[str, Any] = {}
    for item in items:
        name = base = key(item)
        n = 1
        while name in out:
            n += 1
            name = f"{base} #{n}"
        out[name] = item
    return out


def record_key(record: Mapping[str, Any]) -> str:
    """A record set's identity in a zone: ``api.lego-mocs.com. A blue``, ``_bluegreen.api.lego-mocs.com. TXT``."""
    ident = [record["Name"], record["Type"]]
    if "SetIdentifier" in record:
        ident.append(record["SetIdentifier"])
    return " ".join(ident)


def _tags(tag_set: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_set.get("Tags", [])}


def _read(clients: Clients) -> dict[str, Any]:
    from bluegreen_provider.sandbox.route53_rules import CHANGES

    route53, lambdas, cloudwatch, s3 = (clients(s) for s in ("route53", "lambda", "cloudwatch", "s3"))
    zones = {}
    for zone in _pages(route53, "list_hosted_zones", "HostedZones"):
        zone_id = zone["Id"].rsplit("/", 1)[-1]
        records = _pages(route53, "list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zone_id)
        tags = route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)["ResourceTagSet"]
        zones[f"{zone['Name']} {zone_id}"] = {
            "zone": zone,
            "records": _keyed(records, record_key),
            "tags": _tags(tags),
            "change_batches": len(CHANGES.zone(zone_id)),
        }
    checks = {
        check["Id"]: {
            "check": check,
            "tags": _tags(
                route53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=check["Id"])["ResourceTagSet"]
            ),
        }
        for check in _pages(route53, "list_health_checks", "HealthChecks")
    }
    functions = {}
    for fn in _pages(lambdas, "list_functions", "Functions"):
        name = fn["FunctionName"]
        functions[name] = {
            "function": fn,
            "versions": _keyed(
                _pages(lambdas, "list_versions_by_function", "Versions", FunctionName=name), lambda v: v["Version"]
            ),
            "aliases": _keyed(_pages(lambdas, "list_aliases", "Aliases", FunctionName=name), lambda a: a["Name"]),
            "tags": lambdas.list_tags(Resource=fn["FunctionArn"]).get("Tags", {}),
        }
    alarms = cloudwatch.describe_alarms()
    buckets = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    return {
        "route53": {"zones": zones, "health_checks": checks},
        "lambda": functions,
        "cloudwatch": _keyed(
            alarms.get("MetricAlarms", []) + alarms.get("CompositeAlarms", []), lambda a: a["AlarmName"]
        ),
        "s3": {b: _keyed(_pages(s3, "list_objects_v2", "Contents", Bucket=b), lambda o: o["Key"]) for b in buckets},
    }


def read_aws_state(clients: Clients | None = None) -> bytes:
    """Everything the deployment stages could change in moto, as canonical JSON bytes.

    Route53: zones, every record set (the state TXT record among them), zone tags, health checks
    and their tags, committed change batches; Lambda: functions, versions, aliases, tags; CloudWatch:
    alarms, with their state and when it last changed; S3 buckets and objects.
    """
    return json.dumps(_read(clients or _default_client), sort_keys=True, default=str).encode()


def aws_state_tree(state: bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The state as nested dicts (path segments as keys), from :func:`read_aws_state`'s bytes."""
    return json.loads(state) if isinstance(state, bytes | str) else dict(state)


# -- comparing --------------------------------------------------------------------------------------
def _short(value: Any, limit: int = 240) -> str:
    text = ABSENT if value is ABSENT else repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


class StateDiff(dict[str, tuple[Any, Any]]):
    """Changed paths -> (before, after); :data:`ABSENT` stands for a path only one side has.

    Printed, one line per path: ``+`` added, ``-`` removed, ``~`` changed.
    """

    def __str__(self) -> str:
        if not self:
            return "(no change)"
        lines = []
        for path, (old, new) in sorted(self.items()):
            if old is ABSENT:
                lines.append(f"+ {path}: {_short(new)}")
            elif new is ABSENT:
                lines.append(f"- {path}: {_short(old)}")
            else:
                lines.append(f"~ {path}: {_short(old)} -> {_short(new)}")
        return "\n".join(lines)

    def matching(self, *patterns: str) -> StateDiff:
        """The changes whose path matches one of the ``fnmatch`` patterns (``*`` also spans ``/``)."""
        return StateDiff({p: c for p, c in self.items() if any(fnmatch.fnmatchcase(p, pat) for pat in patterns)})

    def outside(self, *patterns: str) -> StateDiff:
        """The changes whose path matches none of the patterns: what a test did not expect to change."""
        inside = self.matching(*patterns)
        return StateDiff({p: c for p, c in self.items() if p not in inside})

    def paths(self) -> set[str]:
        return set(self)


def _walk(before: Any, after: Any, path: str, out: StateDiff) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys()):
            sub = f"{path}/{key}" if path else str(key)
            _walk(before.get(key, ABSENT), after.get(key, ABSENT), sub, out)
    elif before != after:
        out[path] = (before, after)


def diff_aws_state(before: bytes | Mapping[str, Any], after: bytes | Mapping[str, Any]) -> StateDiff:
    """Every path of :func:`read_aws_state` whose value differs, with both values (a readable diff)."""
    out = StateDiff()
    _walk(aws_state_tree(before), aws_state_tree(after), "", out)
    return out


def assert_changed_only(before: bytes, after: bytes, *allowed: str, why: str = "") -> StateDiff:
    """Fail, listing them, if any path outside ``allowed`` (fnmatch patterns) changed; returns the diff."""
    diff = diff_aws_state(before, after)
    unexpected = diff.outside(*allowed)
    assert not unexpected, f"{why or 'AWS changed outside what was expected'}:\n{unexpected}\n\nevery change:\n{diff}"
    return diff


# -- the e2e sandbox --------------------------------------------------------------------------------
def settled_aws_state(sandbox: Sandbox) -> bytes:
    """The sandbox's moto state once its alarms have been evaluated: they start INSUFFICIENT_DATA, and
    the sandbox's evaluator (not a deployment) moves them to OK at its first flush."""
    if sandbox.flushes == 0:
        sandbox.wait_for_flushes(1)
    return read_aws_state(sandbox.clients())


def sandbox_aws_state(sandbox: Sandbox) -> bytes:
    """The sandbox's moto state now, as :func:`read_aws_state` bytes."""
    return read_aws_state(sandbox.clients())


def state_history(sandbox: Sandbox) -> list[DeploymentState | None]:
    """The deployment state record after each committed change batch to the zone, oldest first (None
    before the first deployment): what each transition wrote, read from moto's Route53 change history."""
    from bluegreen_provider.sandbox.route53_rules import CHANGES

    found: list[DeploymentState | None] = []
    for change in CHANGES.zone(sandbox.hosted_zone_id):
        txt = [r for r in change.record_sets if r["Type"] == "TXT" and r["Name"].startswith(STATE_PREFIX)]
        text = decode_txt(" ".join(v["Value"] for v in txt[0]["ResourceRecords"])) if txt else None
        found.append(DeploymentState.from_json(text) if text else None)
    return found


# -- what a deployment of the story's service may change (paths of diff_aws_state) ------------------
ZONE = "route53/zones/lego-mocs.com. *"
STATE_RECORD = f"{ZONE}/records/_bluegreen.api.lego-mocs.com. TXT"
CHANGE_BATCHES = f"{ZONE}/change_batches"
# What every state transition changes in the zone: the state record (the first one creates it, so
# the zone counts one record more; later ones rewrite its value) and the count of committed batches.
STATE_CHANGES = (STATE_RECORD, f"{STATE_RECORD}/*", f"{ZONE}/zone/ResourceRecordSetCount", CHANGE_BATCHES)
# Alarm states move with the traffic's errors, by the sandbox's evaluator as by CloudWatch; a
# deployment only reads alarms, so their definitions never change.
ALARM_STATES = "cloudwatch/*/State*"


def weighted_set(slot: str, field: str = "*") -> str:
    """The path of one weighted set of api.lego-mocs.com (or of one of its fields)."""
    return f"{ZONE}/records/api.lego-mocs.com. A {slot}/{field}"


def lego_zone(state: bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The lego-mocs.com zone's entry of a state read by :func:`read_aws_state`."""
    zones = [z for key, z in aws_state_tree(state)["route53"]["zones"].items() if key.startswith("lego-mocs.com. ")]
    assert len(zones) == 1, zones
    return zones[0]


def weighted_sets(state: bytes | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Set identifier -> the weighted set of api.lego-mocs.com, as moto lists it."""
    return {
        r["SetIdentifier"]: r
        for r in lego_zone(state)["records"].values()
        if r["Name"] == "api.lego-mocs.com." and r["Type"] == "A" and "SetIdentifier" in r
    }


def released_paths(after: bytes | Mapping[str, Any], alias: str) -> list[str]:
    """What releasing into ``alias`` may change per function: ``$LATEST`` (the code uploaded), the
    alias, and the version the alias now serves (added if it was published)."""
    paths = []
    for fn, entry in aws_state_tree(after)["lambda"].items():
        version = entry["aliases"][alias]["FunctionVersion"]
        paths += [
            f"lambda/{fn}/function/*",
            f"lambda/{fn}/versions/$LATEST/*",
            f"lambda/{fn}/versions/{version}",
            f"lambda/{fn}/aliases/{alias}/*",
        ]
    return paths


def health_check_paths(state: DeploymentState) -> list[str]:
    """The Route53 health checks the deployment state records (created by the health stage)."""
    return [f"route53/health_checks/{check}" for check in state.health_checks.values()]

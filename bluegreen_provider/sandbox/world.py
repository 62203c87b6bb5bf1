"""The story's AWS world (lego-api on api.lego-mocs.com) and how to seed it into moto.

Seeding only creates what is missing, so it is safe to run again against a world a deployment has
already changed: shifted weights and re-pointed aliases are left as they are.

A second service (its own zone, weighted record and functions, e.g. to deploy two services at once)
is a :class:`ServiceWorld` seeded by :func:`seed_service`; the story's world is left as it is, and
the traffic simulator and alarms stay lego-api's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

from bluegreen_provider.sandbox.clients import Clients
from bluegreen_provider.sandbox.releases import HANDLER, ReleaseCatalog

ZONE_NAME = "lego-mocs.com"
RECORD_NAME = "api.lego-mocs.com"
SLOTS: tuple[str, ...] = ("blue", "green")
INITIAL_WEIGHTS = {"blue": 100, "green": 0}
# The fixed hosted zone id AWS uses for execute-api regional endpoints in us-east-1.
EXECUTE_API_ZONE_ID = "Z1UJRXOUMOOFQ8"
API_NAME = "lego-api"
FUNCTIONS: tuple[str, ...] = ("lego-api-moc", "lego-api-gallery", "lego-api-wishlist", "lego-api-profile")
FUNCTION_PATHS = {
    "lego-api-moc": "/api/mocs",
    "lego-api-gallery": "/api/gallery",
    "lego-api-wishlist": "/api/wishlist",
    "lego-api-profile": "/api/profile",
}
RUNTIME = "python3.12"
ROLE_NAME = "lego-api-lambda-role"
INITIAL_RELEASE = "v1"
# The error rate the story names as the rollback trigger; alarm thresholds are derived from it.
MAX_ERROR_RATE = 0.05


LIVE_ALIAS = "production"  # the alias every request invokes under the lambda_alias router


def alias_name(slot: str) -> str:
    return f"production-{slot}"


def slot_dns_name(slot: str) -> str:
    return f"{alias_name(slot)}.execute-api.us-east-1.amazonaws.com"


def slot_api_name(slot: str) -> str:
    return f"{API_NAME}-{slot}"


@dataclass(frozen=True)
class AlarmSpec:
    """A CloudWatch alarm on one metric the simulator publishes.

    ``traffic_share`` is the fraction of all requests the metric sees, used to size the threshold.
    """

    name: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    traffic_share: float
    description: str


ALARMS: tuple[AlarmSpec, ...] = (
    AlarmSpec(
        "lego-api-gateway-5xx-errors",
        "AWS/ApiGateway",
        "5XXError",
        (("ApiName", API_NAME),),
        1.0,
        "5XX responses of lego-api (both slots)",
    ),
    *(
        AlarmSpec(
            f"{function}-errors",
            "AWS/Lambda",
            "Errors",
            (("FunctionName", function),),
            1.0 / len(FUNCTIONS),
            f"Invocation errors of {function} (all versions)",
        )
        for function in ("lego-api-moc", "lego-api-gallery", "lego-api-profile")
    ),
)
ALARM_NAMES: tuple[str, ...] = tuple(alarm.name for alarm in ALARMS)


def alarm_period(flush_seconds: float) -> int:
    """A period CloudWatch accepts for 1-second metrics (10, 30 or a multiple of 60) spanning ≥ 3 flushes."""
    wanted = 3 * flush_seconds
    if wanted <= 10:
        return 10
    if wanted <= 30:
        return 30
    return 60 * math.ceil(wanted / 60)


def alarm_threshold(rate_per_second: float, period: int, traffic_share: float) -> float:
    """Errors per period above which the error rate at the configured request rate exceeds 5 %.

    Healthy releases produce no errors, so they never cross it; the ``bad`` release (30 % failures)
    crosses it at 50 % of traffic and not at 10 %, where the deployment's own canary check must act.
    """
    return float(max(1, math.floor(rate_per_second * period * traffic_share * MAX_ERROR_RATE)))


@dataclass(frozen=True)
class World:
    """Identifiers created by seeding that callers cannot know in advance."""

    hosted_zone_id: str
    role_arn: str


def seed(
    clients: Clients,
    catalog: ReleaseCatalog,
    *,
    rate_per_second: float,
    flush_seconds: float,
    alarm_period_seconds: int | None = None,
    live_alias: str | None = None,
) -> World:
    """Create whatever of the story's world is missing (alarms on ``alarm_period_seconds`` if given).

    :param live_alias: also give each function this alias on version 1 (the lambda_alias router's).
    """
    zone_id = _seed_zone(clients)
    role_arn = _seed_role(clients)
    for function in FUNCTIONS:
        _seed_function(clients, catalog, function, role_arn, live_alias=live_alias)
    period = alarm_period_seconds or alarm_period(flush_seconds)
    _seed_alarms(clients, rate_per_second=rate_per_second, period=period)
    return World(hosted_zone_id=zone_id, role_arn=role_arn)


def find_zone_id(clients: Clients, zone_name: str = ZONE_NAME) -> str | None:
    zones = clients("route53").list_hosted_zones_by_name(DNSName=zone_name)["HostedZones"]
    for zone in zones:
        if zone["Name"].rstrip(".") == zone_name:
            return zone["Id"].split("/")[-1]
    return None


def _seed_zone(
    clients: Clients,
    zone_name: str = ZONE_NAME,
    record_name: str = RECORD_NAME,
    dns_name: Callable[[str], str] = slot_dns_name,
) -> str:
    route53 = clients("route53")
    zone_id = find_zone_id(clients, zone_name)
    if zone_id is None:
        created = route53.create_hosted_zone(Name=zone_name, CallerReference=f"bluegreen-sandbox-{zone_name}")
        zone_id = created["HostedZone"]["Id"].split("/")[-1]
    existing = {
        record.get("SetIdentifier")
        for record in route53.list_resource_record_sets(
            HostedZoneId=zone_id, StartRecordName=record_name, StartRecordType="A"
        )["ResourceRecordSets"]
        if record["Name"].rstrip(".") == record_name and record["Type"] == "A"
    }
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": weighted_record(slot, INITIAL_WEIGHTS[slot], record_name, dns_name(slot)),
        }
        for slot in SLOTS
        if slot not in existing
    ]
    if changes:
        route53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Comment": "bluegreen sandbox seed", "Changes": changes}
        )
    return zone_id


def weighted_record(slot: str, weight: int, record_name: str = RECORD_NAME, dns_name: str | None = None) -> dict:
    """The weighted alias record set of one slot, as the story's change batches write it."""
    return {
        "Name": record_name,
        "Type": "A",
        "SetIdentifier": slot,
        "Weight": weight,
        "AliasTarget": {
            "HostedZoneId": EXECUTE_API_ZONE_ID,
            "DNSName": dns_name or slot_dns_name(slot),
            "EvaluateTargetHealth": True,
        },
    }


@dataclass(frozen=True)
class ServiceWorld:
    """Another blue/green service in the sandbox: its own zone, weighted record and functions.

    Each function gets the slot aliases (``production-blue``/``production-green``) on version 1,
    release ``initial_release``; the record starts at blue 100 / green 0. No traffic reaches it and
    no alarm watches it: its soaks see no requests (a DAG for it says ``no_data_policy: pass``).
    ``GET /services/<name>/<slot>/health`` on the sandbox runs its first function's health path.
    """

    name: str
    zone_name: str
    record_name: str
    functions: tuple[str, ...]
    initial_release: str = INITIAL_RELEASE

    def __post_init__(self) -> None:
        problems = []
        if not self.name or "/" in self.name:
            problems.append(f"name must be a non-empty name without '/', got {self.name!r}")
        if self.name == API_NAME or self.zone_name == ZONE_NAME or self.record_name == RECORD_NAME:
            problems.append("a second service needs its own name, zone and record, not lego-api's")
        if not self.record_name.endswith(f".{self.zone_name}"):
            problems.append(f"record {self.record_name!r} is not in zone {self.zone_name!r}")
        if not self.functions or set(self.functions) & set(FUNCTIONS):
            problems.append(f"functions must be its own, not lego-api's, got {list(self.functions)}")
        if problems:
            raise ValueError("invalid sandbox service: " + "; ".join(problems))
        object.__setattr__(self, "functions", tuple(self.functions))

    def slot_dns_name(self, slot: str) -> str:
        return f"{self.name}-{slot}.execute-api.us-east-1.amazonaws.com"

    def health_path(self, slot: str) -> str:
        return f"/services/{self.name}/{slot}/health"


def seed_service(clients: Clients, catalog: ReleaseCatalog, service: ServiceWorld) -> str:
    """Create whatever of ``service`` is missing (zone, weighted record, functions, aliases); its zone id."""
    zone_id = _seed_zone(clients, service.zone_name, service.record_name, service.slot_dns_name)
    role_arn = _seed_role(clients)
    for function in service.functions:
        _seed_function(
            clients,
            catalog,
            function,
            role_arn,
            release=service.initial_release,
            description=f"{service.name} {function} handler",
        )
    return zone_id


def _seed_role(clients: Clients) -> str:
    iam = clients("iam")
    try:
        return iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        pass
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    return iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def _seed_function(
    clients: Clients,
    catalog: ReleaseCatalog,
    function: str,
    role_arn: str,
    *,
    release: str = INITIAL_RELEASE,
    description: str | None = None,
    live_alias: str | None = None,
) -> None:
    lambda_ = clients("lambda")
    try:
        lambda_.get_function(FunctionName=function)
    except lambda_.exceptions.ResourceNotFoundException:
        lambda_.create_function(
            FunctionName=function,
            Runtime=RUNTIME,
            Role=role_arn,
            Handler=HANDLER,
            Code={"ZipFile": catalog[release].zip_bytes},
            Description=description or f"lego-api {function.removeprefix('lego-api-')} handler",
            Timeout=60,
            MemorySize=1024,
        )
    versions = [v["Version"] for v in lambda_.list_versions_by_function(FunctionName=function)["Versions"]]
    if "1" not in versions:
        lambda_.publish_version(FunctionName=function, Description=f"release {release}")
    aliases = {a["Name"] for a in lambda_.list_aliases(FunctionName=function)["Aliases"]}
    for slot in SLOTS:
        if alias_name(slot) not in aliases:
            lambda_.create_alias(FunctionName=function, Name=alias_name(slot), FunctionVersion="1")
    if live_alias and live_alias not in aliases:
        lambda_.create_alias(FunctionName=function, Name=live_alias, FunctionVersion="1")


def _seed_alarms(clients: Clients, *, rate_per_second: float, period: int) -> None:
    cloudwatch = clients("cloudwatch")
    existing = {
        alarm["AlarmName"] for alarm in cloudwatch.describe_alarms(AlarmNames=list(ALARM_NAMES))["MetricAlarms"]
    }
    for alarm in ALARMS:
        if alarm.name in existing:
            continue
        threshold = alarm_threshold(rate_per_second, period, alarm.traffic_share)
        cloudwatch.put_metric_alarm(
            AlarmName=alarm.name,
            AlarmDescription=f"{alarm.description}: more than {threshold:.0f} in {period} s "
            f"(> {MAX_ERROR_RATE:.0%} of {rate_per_second:g} req/s)",
            Namespace=alarm.namespace,
            MetricName=alarm.metric_name,
            Dimensions=[{"Name": k, "Value": v} for k, v in alarm.dimensions],
            Statistic="Sum",
            Period=period,
            EvaluationPeriods=1,
            DatapointsToAlarm=1,
            Threshold=threshold,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        )
        # moto creates alarms in OK; CloudWatch starts them without data until first evaluated.
        cloudwatch.set_alarm_state(
            AlarmName=alarm.name, StateValue="INSUFFICIENT_DATA", StateReason="Unchecked: Initial alarm creation"
        )

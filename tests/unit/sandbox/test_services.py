"""A second service seeded beside the story's: its own zone, record and functions; lego-api's untouched.

Read back from moto with plain boto3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bluegreen_provider.sandbox import world
from bluegreen_provider.sandbox.releases import ReleaseCatalog

SHOP = world.ServiceWorld(
    name="brick-shop",
    zone_name="brick-shop.test",
    record_name="api.brick-shop.test",
    functions=("brick-shop-orders", "brick-shop-cart"),
)


@pytest.fixture
def clients() -> Iterator[Any]:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        made: dict[str, Any] = {}

        def client(service: str) -> Any:
            if service not in made:
                made[service] = boto3.client(service, region_name="us-east-1")
            return made[service]

        yield client


@pytest.fixture(scope="module")
def catalog() -> ReleaseCatalog:
    return ReleaseCatalog()


def snapshot(clients: Any) -> str:
    """Every zone with its records, every function with its versions and aliases, every alarm."""
    route53, lambda_ = clients("route53"), clients("lambda")
    zones = {
        z["Name"]: route53.list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"]
        for z in route53.list_hosted_zones()["HostedZones"]
    }
    functions = {}
    for function in lambda_.list_functions()["Functions"]:
        name = function["FunctionName"]
        versions = lambda_.list_versions_by_function(FunctionName=name)["Versions"]
        aliases = lambda_.list_aliases(FunctionName=name)["Aliases"]
        functions[name] = {
            "versions": [(v["Version"], v["CodeSha256"]) for v in versions],
            "aliases": sorted((a["Name"], a["FunctionVersion"]) for a in aliases),
        }
    alarms = [a["AlarmName"] for a in clients("cloudwatch").describe_alarms()["MetricAlarms"]]
    return json.dumps({"zones": zones, "functions": functions, "alarms": alarms}, sort_keys=True, default=str)


def lego_only(state: str) -> dict[str, Any]:
    data = json.loads(state)
    return {
        "zones": {k: v for k, v in data["zones"].items() if k == f"{world.ZONE_NAME}."},
        "functions": {k: v for k, v in data["functions"].items() if k in world.FUNCTIONS},
        "alarms": data["alarms"],
    }


def test_a_second_service_gets_its_own_zone_record_and_functions(clients, catalog) -> None:
    seeded = world.seed(clients, catalog, rate_per_second=40, flush_seconds=1)
    lego = snapshot(clients)

    zone_id = world.seed_service(clients, catalog, SHOP)

    assert zone_id != seeded.hosted_zone_id
    assert world.find_zone_id(clients, "brick-shop.test") == zone_id
    records = clients("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    weighted = {r["SetIdentifier"]: r for r in records if r["Type"] == "A"}
    assert {s: r["Weight"] for s, r in weighted.items()} == {"blue": 100, "green": 0}
    for slot, record in weighted.items():
        assert record["Name"] == "api.brick-shop.test."
        assert record["AliasTarget"]["DNSName"].rstrip(".") == f"brick-shop-{slot}.execute-api.us-east-1.amazonaws.com"
    lambda_ = clients("lambda")
    for function in SHOP.functions:
        versions = lambda_.list_versions_by_function(FunctionName=function)["Versions"]
        assert [(v["Version"], v["CodeSha256"]) for v in versions] == [
            ("$LATEST", catalog["v1"].sha256),
            ("1", catalog["v1"].sha256),
        ]
        aliases = sorted(
            (a["Name"], a["FunctionVersion"]) for a in lambda_.list_aliases(FunctionName=function)["Aliases"]
        )
        assert aliases == [("production-blue", "1"), ("production-green", "1")]
    after = snapshot(clients)
    assert lego_only(after) == lego_only(lego), "the story's world is left exactly as it was"
    assert after != lego


def test_seeding_a_service_again_changes_nothing(clients, catalog) -> None:
    world.seed_service(clients, catalog, SHOP)
    lambda_ = clients("lambda")
    lambda_.update_alias(FunctionName="brick-shop-cart", Name="production-green", FunctionVersion="$LATEST")
    before = snapshot(clients)
    world.seed_service(clients, catalog, SHOP)
    assert snapshot(clients) == before


def test_the_story_world_alone_is_seeded_as_before(clients, catalog) -> None:
    world.seed(clients, catalog, rate_per_second=40, flush_seconds=1)
    data = json.loads(snapshot(clients))
    assert list(data["zones"]) == ["lego-mocs.com."]
    assert sorted(data["functions"]) == sorted(world.FUNCTIONS)
    records = [r for r in data["zones"]["lego-mocs.com."] if r["Type"] == "A"]
    assert {r["SetIdentifier"]: r["AliasTarget"]["DNSName"].rstrip(".") for r in records} == {
        "blue": "production-blue.execute-api.us-east-1.amazonaws.com",
        "green": "production-green.execute-api.us-east-1.amazonaws.com",
    }


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"name": "lego-api"}, "its own name, zone and record"),
        ({"zone_name": "lego-mocs.com", "record_name": "shop.lego-mocs.com"}, "its own name, zone and record"),
        ({"record_name": "api.elsewhere.test"}, "is not in zone"),
        ({"functions": ("lego-api-moc",)}, "functions must be its own"),
        ({"functions": ()}, "functions must be its own"),
        ({"name": "a/b"}, "without '/'"),
    ],
)
def test_a_service_that_would_overlap_the_story_s_is_refused(changes, problem) -> None:
    fields = {"name": SHOP.name, "zone_name": SHOP.zone_name, "record_name": SHOP.record_name,
              "functions": SHOP.functions, **changes}  # fmt: skip
    with pytest.raises(ValueError, match=problem):
        world.ServiceWorld(**fields)


def test_a_service_names_its_health_path_and_slot_hosts() -> None:
    assert SHOP.health_path("green") == "/services/brick-shop/green/health"
    assert SHOP.slot_dns_name("blue") == "brick-shop-blue.execute-api.us-east-1.amazonaws.com"

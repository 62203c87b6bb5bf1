"""Seeding: the story's world exists in moto, read back through the AWS APIs, and re-seeding changes nothing."""

from __future__ import annotations

from bluegreen_provider.sandbox import Sandbox, world


def _snapshot(sandbox: Sandbox) -> dict:
    clients = sandbox.clients()
    route53, lambda_, cloudwatch = clients("route53"), clients("lambda"), clients("cloudwatch")
    zones = [z for z in route53.list_hosted_zones()["HostedZones"] if z["Name"] == "lego-mocs.com."]
    records = [
        r
        for r in route53.list_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id)["ResourceRecordSets"]
        if r["Name"] == "api.lego-mocs.com."
    ]
    functions = {}
    for name in world.FUNCTIONS:
        versions = lambda_.list_versions_by_function(FunctionName=name)["Versions"]
        aliases = lambda_.list_aliases(FunctionName=name)["Aliases"]
        functions[name] = {
            "versions": sorted((v["Version"], v["CodeSha256"], v["Runtime"]) for v in versions),
            "aliases": sorted((a["Name"], a["FunctionVersion"]) for a in aliases),
        }
    alarms = {
        a["AlarmName"]: (a["Namespace"], a["MetricName"], a["Dimensions"], a["Statistic"], a["Threshold"])
        for a in cloudwatch.describe_alarms()["MetricAlarms"]
    }
    return {"zones": zones, "records": records, "functions": functions, "alarms": alarms}


def test_seed_creates_the_story_world(sandbox: Sandbox) -> None:
    state = _snapshot(sandbox)
    assert len(state["zones"]) == 1
    by_set = {r["SetIdentifier"]: r for r in state["records"]}
    assert set(by_set) == {"blue", "green"}
    assert by_set["blue"]["Weight"] == 100 and by_set["green"]["Weight"] == 0
    for slot, record in by_set.items():
        assert record["Type"] == "A"
        assert record["AliasTarget"] == {
            "HostedZoneId": "Z1UJRXOUMOOFQ8",
            "DNSName": f"production-{slot}.execute-api.us-east-1.amazonaws.com",
            "EvaluateTargetHealth": True,
        }
    v1_sha = sandbox.release_sha256("v1")
    for name in ("lego-api-moc", "lego-api-gallery", "lego-api-wishlist", "lego-api-profile"):
        assert state["functions"][name]["versions"] == [
            ("$LATEST", v1_sha, "python3.12"),
            ("1", v1_sha, "python3.12"),
        ]
        assert state["functions"][name]["aliases"] == [("production-blue", "1"), ("production-green", "1")]
    alarms = state["alarms"]
    assert set(alarms) == {
        "lego-api-gateway-5xx-errors",
        "lego-api-moc-errors",
        "lego-api-gallery-errors",
        "lego-api-profile-errors",
    }
    assert alarms["lego-api-gateway-5xx-errors"][:3] == (
        "AWS/ApiGateway",
        "5XXError",
        [{"Name": "ApiName", "Value": "lego-api"}],
    )
    assert alarms["lego-api-moc-errors"][:3] == (
        "AWS/Lambda",
        "Errors",
        [{"Name": "FunctionName", "Value": "lego-api-moc"}],
    )
    assert all(alarm[3] == "Sum" and alarm[4] >= 1 for alarm in alarms.values())


def test_seed_is_idempotent_and_keeps_a_deployment_s_changes(sandbox: Sandbox, set_weights, deploy) -> None:
    set_weights(60, 40)
    deploy("v2", "green", ("lego-api-moc",))
    before = _snapshot(sandbox)

    again = world.seed(sandbox.clients(), sandbox.catalog, rate_per_second=400, flush_seconds=0.5)

    assert again.hosted_zone_id == sandbox.hosted_zone_id
    assert _snapshot(sandbox) == before
    assert sandbox.weights() == {"blue": 60, "green": 40}
    assert ("production-green", "2") in before["functions"]["lego-api-moc"]["aliases"]


def test_alarm_thresholds_separate_bad_at_half_traffic_from_bad_at_a_tenth() -> None:
    rate, period = 20.0, world.alarm_period(10.0)
    assert period == 30
    gateway = world.alarm_threshold(rate, period, 1.0)
    expected = rate * period
    bad_failure_rate = 0.30
    assert 0.5 * bad_failure_rate * expected > gateway > 0.1 * bad_failure_rate * expected
    assert world.alarm_period(0.5) == 10 and world.alarm_period(30) == 120

"""Route53Hook against moto: weighted splits, health checks, zone tags and bad input."""

from __future__ import annotations

import boto3
import pytest

from bluegreen_provider.hooks.route53 import (
    HealthCheckError,
    Route53ChangeTimeout,
    Route53Hook,
    WeightedRecordError,
)

CF_ZONE = "Z2FDTNDATAQYW2"  # CloudFront's alias hosted zone id


@pytest.fixture
def r53(moto):
    return boto3.client("route53")


@pytest.fixture
def hook(moto):
    return Route53Hook(aws_conn_id=None)


def _create(r53, zone_id, *records):
    r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": r} for r in records]},
    )


@pytest.fixture
def zone(r53):
    """A zone with api.example.com: blue (alias target) 100, green (A records + health check) 0."""
    zone_id = r53.create_hosted_zone(Name="example.com", CallerReference="z1")["HostedZone"]["Id"].split("/")[-1]
    hc = r53.create_health_check(
        CallerReference="green-hc",
        HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": "green.example.com", "Port": 443},
    )["HealthCheck"]["Id"]
    _create(
        r53,
        zone_id,
        {
            "Name": "api.example.com",
            "Type": "A",
            "SetIdentifier": "blue",
            "Weight": 100,
            "AliasTarget": {"HostedZoneId": CF_ZONE, "DNSName": "blue.cloudfront.net", "EvaluateTargetHealth": True},
        },
        {
            "Name": "api.example.com",
            "Type": "A",
            "SetIdentifier": "green",
            "Weight": 0,
            "TTL": 60,
            "ResourceRecords": [{"Value": "192.0.2.10"}, {"Value": "192.0.2.11"}],
            "HealthCheckId": hc,
        },
        {"Name": "api.example.com", "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": '"owner=bluegreen"'}]},
        {"Name": "www.example.com", "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": "api.example.com"}]},
    )
    return {"id": zone_id, "hc": hc}


def _records(r53, zone_id):
    return r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]


def _state(r53, zone_id):
    """Everything a bad call could have touched."""
    return {
        "records": _records(r53, zone_id),
        "health_checks": sorted(
            (h["Id"], str(h["HealthCheckConfig"])) for h in r53.list_health_checks()["HealthChecks"]
        ),
        "tags": r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)["ResourceTagSet"].get(
            "Tags", []
        ),
    }


def _weighted(r53, zone_id, set_id):
    return next(r for r in _records(r53, zone_id) if r.get("SetIdentifier") == set_id)


# ------------------------------------------------------------------ zones


def test_resolve_zone_id_by_id_prefix_and_name(hook, zone):
    zid = zone["id"]
    assert hook.resolve_zone_id(zid) == zid
    assert hook.resolve_zone_id(f"/hostedzone/{zid}") == zid
    assert hook.resolve_zone_id("example.com") == zid
    assert hook.resolve_zone_id("Example.COM.") == zid


@pytest.mark.parametrize("bad", ["ZNOSUCHZONE", "nosuch.example.org", "/hostedzone/ZNOPE"])
def test_resolve_zone_id_unknown_lists_existing(hook, zone, bad):
    with pytest.raises(WeightedRecordError, match=rf"(?s){bad.split('/')[-1]}.*example\.com\. \({zone['id']}"):
        hook.resolve_zone_id(bad)


def test_resolve_zone_id_ambiguous_name(hook, zone, r53):
    private = r53.create_hosted_zone(
        Name="example.com",
        CallerReference="z2",
        VPC={"VPCRegion": "us-east-1", "VPCId": boto3.client("ec2").describe_vpcs()["Vpcs"][0]["VpcId"]},
        HostedZoneConfig={"PrivateZone": True, "Comment": "internal"},
    )["HostedZone"]["Id"].split("/")[-1]
    with pytest.raises(WeightedRecordError, match=rf"ambiguous.*{zone['id']}.*{private}"):
        hook.resolve_zone_id("example.com")


# --------------------------------------------------------- weighted reads


def test_get_weighted_sets_reads_only_weighted_sets_of_that_name_and_type(hook, zone):
    sets = hook.get_weighted_sets(zone["id"], "API.example.com")  # case and missing dot ignored
    assert set(sets) == {"blue", "green"}
    assert sets["blue"].weight == 100 and sets["blue"].health_check_id is None
    assert sets["blue"].record["AliasTarget"]["DNSName"] == "blue.cloudfront.net"
    assert sets["green"].weight == 0 and sets["green"].health_check_id == zone["hc"]
    assert sets["green"].record["ResourceRecords"] == [{"Value": "192.0.2.10"}, {"Value": "192.0.2.11"}]


def test_get_weighted_sets_paginates(hook, zone, r53):
    # 400 records sorting before api.example.com push the weighted sets onto the second page.
    fillers = [
        {"Name": f"a{i:03d}.example.com", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.1"}]}
        for i in range(400)
    ]
    _create(r53, zone["id"], *fillers)
    first = r53.list_resource_record_sets(HostedZoneId=zone["id"])
    assert first["IsTruncated"] and all(r["Name"] != "api.example.com." for r in first["ResourceRecordSets"])
    assert hook.get_split(zone["id"], "api.example.com.", "A", ["blue", "green"]) == {"blue": 100, "green": 0}


@pytest.mark.parametrize(
    ("name", "rtype", "message"),
    [
        ("nope.example.com", "A", "No weighted A record sets named 'nope.example.com'"),
        ("api.example.com", "AAAA", "No weighted AAAA record sets"),
        ("api.example.com", "TXT", r"non-weighted sets \['<simple record>'\]"),
    ],
)
def test_get_weighted_sets_unknown_record(hook, zone, name, rtype, message):
    with pytest.raises(WeightedRecordError, match=message):
        hook.get_weighted_sets(zone["id"], name, rtype)


def test_get_weighted_sets_unknown_zone(hook, zone):
    with pytest.raises(WeightedRecordError, match=r"ZMISSING.*not found; existing zones"):
        hook.get_weighted_sets("ZMISSING", "api.example.com")


def test_get_split_missing_set_lists_existing(hook, zone):
    with pytest.raises(WeightedRecordError, match=r"\['purple'\] not found.*\['blue', 'green'\]"):
        hook.get_split(zone["id"], "api.example.com", "A", ["blue", "purple"])


# -------------------------------------------------------- weighted writes


def test_set_split_round_trip_keeps_targets(hook, zone, r53):
    before_blue = _weighted(r53, zone["id"], "blue")
    before_green = _weighted(r53, zone["id"], "green")
    change_id = hook.set_split(zone["id"], "api.example.com", "A", {"blue": 90, "green": 10}, comment="shift 10")
    assert change_id
    assert hook.get_split(zone["id"], "api.example.com", "A", ["blue", "green"]) == {"blue": 90, "green": 10}
    after_blue = _weighted(r53, zone["id"], "blue")
    after_green = _weighted(r53, zone["id"], "green")
    assert after_blue == {**before_blue, "Weight": 90}
    assert after_green == {**before_green, "Weight": 10}
    assert after_green["HealthCheckId"] == zone["hc"] and after_green["TTL"] == 60
    hook.wait_for_change(change_id, timeout_seconds=5, poll_seconds=0.1)
    assert hook.get_change_status(change_id) == "INSYNC"
    assert hook.get_change_status(f"/change/{change_id}") == "INSYNC"


def test_set_split_sends_one_change_batch_with_only_changed_sets(hook, zone):
    calls = []
    real = hook.conn.change_resource_record_sets

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    hook.conn.change_resource_record_sets = spy
    hook.set_split(zone["id"], "api.example.com", "A", {"blue": 50, "green": 50}, comment="half")
    assert len(calls) == 1
    batch = calls[0]["ChangeBatch"]
    assert batch["Comment"] == "half"
    assert [(c["Action"], c["ResourceRecordSet"]["SetIdentifier"]) for c in batch["Changes"]] == [
        ("UPSERT", "blue"),
        ("UPSERT", "green"),
    ]
    calls.clear()
    hook.set_split(zone["id"], "api.example.com", "A", {"blue": 0, "green": 50}, comment="only blue moves")
    assert [c["ResourceRecordSet"]["SetIdentifier"] for c in calls[0]["ChangeBatch"]["Changes"]] == ["blue"]


def test_set_split_noop_when_weights_already_equal(hook, zone, r53):
    before = _state(r53, zone["id"])
    assert hook.set_split(zone["id"], "api.example.com", "A", {"blue": 100, "green": 0}, comment="x") is None
    assert _state(r53, zone["id"]) == before


def test_set_split_allow_all_zero(hook, zone):
    change = hook.set_split(
        zone["id"], "api.example.com", "A", {"blue": 0, "green": 0}, comment="drain", allow_all_zero=True
    )
    assert change is not None
    assert hook.get_split(zone["id"], "api.example.com", "A", ["blue", "green"]) == {"blue": 0, "green": 0}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"blue": 256, "green": 0}, r"'blue' must be an int in 0\.\.255, got 256"),
        ({"blue": -1, "green": 1}, r"'blue' must be an int in 0\.\.255, got -1"),
        ({"blue": True, "green": 0}, r"'blue' must be an int in 0\.\.255, got True"),
        ({"blue": 50.0, "green": 50}, r"got 50\.0"),
        ({"blue": "50", "green": 50}, r"got '50'"),
        ({"blue": 0, "green": 0}, r"would leave every set .* at 0.*allow_all_zero"),
        ({"blue": 0}, r"would leave every set"),  # green is already 0
        ({"blue": 90, "purple": 10}, r"\['purple'\] not found.*existing sets: \['blue', 'green'\]"),
        ({}, "non-empty mapping"),
    ],
)
def test_set_split_bad_weights_change_nothing(hook, zone, r53, weights, message):
    before = _state(r53, zone["id"])
    with pytest.raises(WeightedRecordError, match=message):
        hook.set_split(zone["id"], "api.example.com", "A", weights, comment="bad")
    assert _state(r53, zone["id"]) == before


def test_set_split_unknown_record_or_zone_changes_nothing(hook, zone, r53):
    before = _state(r53, zone["id"])
    with pytest.raises(WeightedRecordError, match=r"No weighted A record sets named 'app\.example\.com'"):
        hook.set_split(zone["id"], "app.example.com", "A", {"blue": 1}, comment="bad")
    with pytest.raises(WeightedRecordError, match="ZMISSING"):
        hook.set_split("ZMISSING", "api.example.com", "A", {"blue": 1}, comment="bad")
    assert _state(r53, zone["id"]) == before


def test_set_health_check_detach_and_attach_keeps_record(hook, zone, r53):
    before = _weighted(r53, zone["id"], "green")
    assert hook.set_health_check(zone["id"], "api.example.com", "A", "green", zone["hc"], comment="same") is None
    assert hook.set_health_check(zone["id"], "api.example.com", "A", "green", None, comment="detach")
    detached = _weighted(r53, zone["id"], "green")
    assert "HealthCheckId" not in detached
    assert detached == {k: v for k, v in before.items() if k != "HealthCheckId"}
    assert hook.set_health_check(zone["id"], "api.example.com", "A", "green", zone["hc"], comment="attach")
    assert _weighted(r53, zone["id"], "green") == before


def test_set_health_check_bad_input_changes_nothing(hook, zone, r53):
    before = _state(r53, zone["id"])
    with pytest.raises(HealthCheckError, match="'no-such-check' does not exist"):
        hook.set_health_check(zone["id"], "api.example.com", "A", "blue", "no-such-check", comment="bad")
    with pytest.raises(WeightedRecordError, match=r"\['purple'\] not found"):
        hook.set_health_check(zone["id"], "api.example.com", "A", "purple", zone["hc"], comment="bad")
    assert _state(r53, zone["id"]) == before


def test_wait_for_change_times_out(hook, monkeypatch):
    polls = []
    monkeypatch.setattr(hook, "get_change_status", lambda change_id: polls.append(change_id) or "PENDING")
    with pytest.raises(Route53ChangeTimeout, match=r"C1 still PENDING after 0\.05s") as info:
        hook.wait_for_change("C1", timeout_seconds=0.05, poll_seconds=0.01)
    assert isinstance(info.value, TimeoutError)
    assert len(polls) >= 2


def test_wait_for_change_returns_after_pending(hook, monkeypatch):
    answers = iter(["PENDING", "PENDING", "INSYNC"])
    monkeypatch.setattr(hook, "get_change_status", lambda change_id: next(answers))
    hook.wait_for_change("C1", timeout_seconds=5, poll_seconds=0.001)
    assert next(answers, "exhausted") == "exhausted"


# ---------------------------------------------------------- health checks


def _hc(r53, check_id):
    return r53.get_health_check(HealthCheckId=check_id)["HealthCheck"]


def test_ensure_health_check_create_reuse_update(hook, r53):
    kwargs = {"caller_reference": "bg-api-green", "fqdn": "green.example.com", "tags": {"Name": "api-green"}}
    check_id = hook.ensure_health_check(**kwargs)
    cfg = _hc(r53, check_id)["HealthCheckConfig"]
    assert cfg["Type"] == "HTTPS" and cfg["ResourcePath"] == "/health" and cfg["Port"] == 443
    assert cfg["MeasureLatency"] is True and cfg["EnableSNI"] is True
    assert cfg["FailureThreshold"] == 3 and cfg["RequestInterval"] == 30
    tags = r53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=check_id)["ResourceTagSet"]["Tags"]
    assert tags == [{"Key": "Name", "Value": "api-green"}]

    assert hook.ensure_health_check(**kwargs) == check_id
    assert len(r53.list_health_checks()["HealthChecks"]) == 1
    assert _hc(r53, check_id)["HealthCheckVersion"] == 1  # no update sent

    assert hook.ensure_health_check(**kwargs, path="/ready", port=8443, failure_threshold=2) == check_id
    cfg = _hc(r53, check_id)["HealthCheckConfig"]
    assert (cfg["ResourcePath"], cfg["Port"], cfg["FailureThreshold"]) == ("/ready", 8443, 2)
    assert len(r53.list_health_checks()["HealthChecks"]) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"check_type": "HTTPZ"}, "check_type 'HTTPZ' is not one of"),
        ({"request_interval": 20}, "request_interval must be 10 or 30, got 20"),
        ({"port": 0}, "port must be an int in 1..65535, got 0"),
        ({"port": True}, "got True"),
        ({"failure_threshold": 11}, "failure_threshold must be an int in 1..10, got 11"),
        ({"path": "health"}, "path must start with '/', got 'health'"),
        ({"fqdn": ""}, "fqdn and caller_reference are required"),
    ],
)
def test_ensure_health_check_bad_input_creates_nothing(hook, r53, kwargs, message):
    args = {"caller_reference": "bg", "fqdn": "green.example.com", **kwargs}
    with pytest.raises(HealthCheckError, match=message):
        hook.ensure_health_check(**args)
    assert r53.list_health_checks()["HealthChecks"] == []


def test_ensure_health_check_immutable_setting_clash(hook, r53):
    check_id = hook.ensure_health_check(caller_reference="bg", fqdn="green.example.com")
    before = _hc(r53, check_id)
    with pytest.raises(HealthCheckError, match=r"cannot change \{'RequestInterval': \(30, 10\)\}"):
        hook.ensure_health_check(caller_reference="bg", fqdn="green.example.com", request_interval=10, port=1)
    assert _hc(r53, check_id) == before


def test_health_check_status_and_delete(hook, r53):
    check_id = hook.ensure_health_check(caller_reference="bg", fqdn="green.example.com")
    status = hook.health_check_status(check_id)
    assert status.health_check_id == check_id
    assert status.healthy is True and status.failing == 0 and status.checkers >= 1  # moto always reports success
    assert "success" in status.detail
    assert hook.delete_health_check(check_id) is True
    assert r53.list_health_checks()["HealthChecks"] == []
    assert hook.delete_health_check(check_id) is False
    with pytest.raises(HealthCheckError, match="does not exist"):
        hook.health_check_status(check_id)


def _observations(healthy: int, failing: int) -> list[dict]:
    regions = [f"region-{i}" for i in range(healthy + failing)]
    ok = [{"Region": r, "StatusReport": {"Status": "Success: HTTP Status Code 200, OK"}} for r in regions[:healthy]]
    bad = [{"Region": r, "StatusReport": {"Status": "Failure: HTTP Status Code 503"}} for r in regions[healthy:]]
    return ok + bad


def _status_with(hook, monkeypatch, observations):
    fake_client = type(
        "FakeRoute53", (), {"get_health_check_status": lambda self, **kw: {"HealthCheckObservations": observations}}
    )()
    monkeypatch.setattr(hook, "conn", fake_client)  # moto only ever reports success
    return hook.health_check_status("hc-1")


@pytest.mark.parametrize(
    ("healthy", "failing", "expected"),
    [
        (8, 0, True),
        (7, 1, True),  # one regional blip: Route53 itself still calls the check healthy
        (2, 6, True),  # 25 % healthy
        (1, 7, False),  # 12.5 % healthy
        (0, 8, False),
        (10, 40, True),  # 20 %
        (9, 41, False),  # exactly 18 % is not more than 18 %
    ],
)
def test_health_check_status_follows_route53s_more_than_18_percent_rule(hook, monkeypatch, healthy, failing, expected):
    status = _status_with(hook, monkeypatch, _observations(healthy, failing))
    assert (status.healthy, status.checkers, status.failing) == (expected, healthy + failing, failing)


def test_health_check_status_detail_names_the_failing_regions_and_the_rule(hook, monkeypatch):
    failing = {"Region": "ap-south-1", "StatusReport": {"Status": "Failure: Connection timed out."}}
    observations = [*_observations(7, 0), failing]
    status = _status_with(hook, monkeypatch, observations)
    assert status.healthy is True
    assert status.detail == (
        "1 of 8 checkers failing (ap-south-1: Failure: Connection timed out.); "
        "healthy by Route53's rule (>18 % healthy)"
    )
    status = _status_with(hook, monkeypatch, _observations(1, 7))
    assert status.healthy is False and status.detail.startswith("7 of 8 checkers failing (region-1: Failure: HTTP")
    assert status.detail.endswith("); unhealthy by Route53's rule (>18 % healthy)")


def test_health_check_status_without_observations_is_not_known_yet(hook, monkeypatch):
    status = _status_with(hook, monkeypatch, [])
    assert (status.healthy, status.checkers, status.failing) == (True, 0, 0)
    assert status.detail == "no checker has reported yet"


# --------------------------------------------------------------- zone tags


def test_zone_tags_round_trip(hook, zone, r53):
    assert hook.get_zone_tags(zone["id"]) == {}
    hook.set_zone_tags(zone["id"], {"bluegreen:lock": "run-1", "bluegreen:retain-until": "2026-11-27T10:00Z"})
    assert hook.get_zone_tags(f"/hostedzone/{zone['id']}") == {
        "bluegreen:lock": "run-1",
        "bluegreen:retain-until": "2026-11-27T10:00Z",
    }
    hook.set_zone_tags(zone["id"], {"bluegreen:lock": "run-2"})
    hook.remove_zone_tags(zone["id"], ["bluegreen:retain-until", "not-set"])
    tags = r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone["id"])["ResourceTagSet"]["Tags"]
    assert tags == [{"Key": "bluegreen:lock", "Value": "run-2"}]


def test_zone_tags_bad_input_changes_nothing(hook, zone, r53):
    hook.set_zone_tags(zone["id"], {"keep": "me"})
    before = _state(r53, zone["id"])
    with pytest.raises(WeightedRecordError, match="ZMISSING"):
        hook.get_zone_tags("ZMISSING")
    with pytest.raises(WeightedRecordError, match="ZMISSING"):
        hook.set_zone_tags("ZMISSING", {"a": "b"})
    with pytest.raises(WeightedRecordError, match="ZMISSING"):
        hook.remove_zone_tags("ZMISSING", ["keep"])
    with pytest.raises(WeightedRecordError, match=r"At most 10 zone tags per call, got 11"):
        hook.set_zone_tags(zone["id"], {f"k{i}": "v" for i in range(11)})
    with pytest.raises(WeightedRecordError, match=r"str values, got \{'lock': 1\}"):
        hook.set_zone_tags(zone["id"], {"lock": 1})
    with pytest.raises(WeightedRecordError, match="sequence of non-empty strings, got 'keep'"):
        hook.remove_zone_tags(zone["id"], "keep")
    assert _state(r53, zone["id"]) == before

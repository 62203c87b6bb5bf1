"""The hooks take ``endpoint_url`` from the Airflow connection's extra, so one code path serves moto and AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto.server import ThreadedMotoServer

from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook
from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import Route53Hook

from .conftest import REGION, make_zip

CONN_ID = "bluegreen_moto"


@pytest.fixture
def moto_server(aws_env, monkeypatch):
    """A real HTTP moto server on a free port, reachable only through the connection's endpoint_url."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": url, "region_name": REGION},
            }
        ),
    )
    yield url
    server.stop()


def _client(service, url):
    return boto3.client(service, endpoint_url=url, region_name=REGION)


def test_hooks_reach_moto_server_through_connection_extra(moto_server):
    url = moto_server
    route53 = Route53Hook(aws_conn_id=CONN_ID)
    cloudwatch = CloudWatchMetricsHook(aws_conn_id=CONN_ID)
    lam = LambdaAliasHook(aws_conn_id=CONN_ID)
    for hook in (route53, cloudwatch, lam):
        assert hook.conn.meta.endpoint_url == url
    assert lam.conn.meta.region_name == REGION

    # Route53: seed through a plain client on the server, shift through the hook, read back plainly.
    r53 = _client("route53", url)
    zone_id = r53.create_hosted_zone(Name="example.com", CallerReference="c")["HostedZone"]["Id"]
    r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "api.example.com",
                        "Type": "A",
                        "SetIdentifier": s,
                        "Weight": w,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": ip}],
                    },
                }
                for s, w, ip in (("blue", 100, "192.0.2.1"), ("green", 0, "192.0.2.2"))
            ]
        },
    )
    bare = route53.resolve_zone_id("example.com")
    change = route53.set_split(bare, "api.example.com", "A", {"blue": 90, "green": 10}, comment="10%")
    route53.wait_for_change(change, timeout_seconds=10, poll_seconds=0.1)
    weights = {
        r["SetIdentifier"]: r["Weight"]
        for r in r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        if "SetIdentifier" in r
    }
    assert weights == {"blue": 90, "green": 10}

    # CloudWatch: datapoints put on the server are summed by the hook.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    _client("cloudwatch", url).put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": "api"}],
                "Timestamp": now - timedelta(minutes=2),
                "Value": 3,
            }
        ],
    )
    assert (
        cloudwatch.metric_sum(
            "AWS/Lambda", "Errors", {"FunctionName": "api"}, start=now - timedelta(minutes=5), end=now
        )
        == 3.0
    )

    # Lambda: publish and point an alias through the hook, read back plainly.
    role = _client("iam", url).create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    plain_lambda = _client("lambda", url)
    plain_lambda.create_function(
        FunctionName="api",
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": make_zip("def handler(e, c):\n    return 1\n")},
    )
    version = lam.publish_code("api", zip_file=make_zip("def handler(e, c):\n    return 2\n"))
    lam.point_alias("api", "production-green", version.version)
    assert plain_lambda.get_alias(FunctionName="api", Name="production-green")["FunctionVersion"] == version.version

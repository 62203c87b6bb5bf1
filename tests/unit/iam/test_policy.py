"""The IAM policy rendered from a service config: scoped to its zone, records, functions, alarms and topic."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bluegreen_provider.example_dags.lego_api_service import lego_api
from bluegreen_provider.iam_policy import IamPolicyError, policy_for, render, template, values_for
from bluegreen_provider.spec import DeploymentSpec

ACCOUNT, REGION, ZONE = "123456789012", "eu-west-1", "Z0123456789ABC"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:deployments"


def spec(**overrides) -> DeploymentSpec:
    return DeploymentSpec.from_dict({**lego_api(releases=Path("/releases")), **overrides})


def statement(policy: dict, sid: str) -> dict:
    return next(s for s in policy["Statement"] if s["Sid"] == sid)


def by_action(policy: dict) -> dict[str, list[str]]:
    """Action -> every resource some statement grants it on."""
    granted: dict[str, list[str]] = {}
    for s in policy["Statement"]:
        for action in s["Action"]:
            granted.setdefault(action, []).extend([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    return granted


@pytest.fixture
def policy() -> dict:
    return policy_for(spec(notifications={"sns": {"target_arn": TOPIC}}), ACCOUNT, REGION, hosted_zone_id=ZONE)


def test_a_valid_policy_document_with_every_placeholder_filled(policy):
    assert policy["Version"] == "2012-10-17"
    assert "${" not in json.dumps(policy)
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids)) and all(re.fullmatch(r"[A-Za-z0-9]+", s) for s in sids), sids
    assert {s["Effect"] for s in policy["Statement"]} == {"Allow"}
    # "*" only where AWS offers no resource-level permission, and the statement says so.
    star = [s["Sid"] for s in policy["Statement"] if s["Resource"] == "*"]
    assert star and all(sid.endswith("NeedsStar") for sid in star), star
    assert set(by_action(policy)) >= {"route53:ChangeResourceRecordSets", "lambda:PublishVersion", "sns:Publish"}


def test_scoped_to_the_service(policy):
    granted = by_action(policy)
    zone = f"arn:aws:route53:::hostedzone/{ZONE}"
    assert granted["route53:ListResourceRecordSets"] == [zone]
    assert granted["route53:ChangeResourceRecordSets"] == [zone]
    assert statement(policy, "Route53ChangeOnlyServiceRecords")["Condition"] == {
        "ForAllValues:StringEquals": {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                "api.lego-mocs.com",
                "_bluegreen.api.lego-mocs.com",
            ],
            "route53:ChangeResourceRecordSetsRecordTypes": ["A", "TXT"],
        }
    }
    assert granted["route53:GetChange"] == ["arn:aws:route53:::change/*"]
    assert granted["route53:DeleteHealthCheck"] == ["arn:aws:route53:::healthcheck/*"]
    fn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:lego-api-moc"
    assert {fn, f"{fn}:*"} <= set(granted["lambda:UpdateAlias"]) and len(granted["lambda:UpdateAlias"]) == 8
    # Versions only: a whole function is never deleted, and prewarm invokes an alias.
    assert f"{fn}:*" in granted["lambda:DeleteFunction"] and fn not in granted["lambda:DeleteFunction"]
    assert fn not in granted["lambda:InvokeFunction"]
    assert granted["cloudwatch:DescribeAlarms"] == [
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
        for name in ("lego-api-gateway-5xx-errors", "lego-api-moc-errors", "lego-api-gallery-errors")
    ]
    assert granted["sns:Publish"] == [TOPIC]
    assert "lambda:ListFunctions" not in granted, "it would show every function's environment in the account"
    assert not [a for a in granted if a.startswith("s3:")], "no release from S3 named"


def test_statements_without_resources_are_dropped():
    policy = policy_for(spec(alarms=[]), ACCOUNT, REGION, hosted_zone_id=ZONE)
    assert not {"cloudwatch:DescribeAlarms", "sns:Publish"} & set(by_action(policy))
    assert "cloudwatch:GetMetricData" in by_action(policy)


def test_release_buckets_from_the_config_and_from_the_caller():
    config = spec(release={"s3_bucket": "artifacts", "s3_prefix": "lego/"})
    policy = policy_for(config, ACCOUNT, REGION, hosted_zone_id=ZONE, artifact_buckets=["more-artifacts"])
    assert statement(policy, "LambdaFetchesS3ReleasesAsCaller")["Resource"] == [
        "arn:aws:s3:::artifacts/*",
        "arn:aws:s3:::more-artifacts/*",
    ]


def test_zone_id_from_the_config_and_partition_from_the_region():
    policy = policy_for(spec(hosted_zone="/hostedzone/ZABC"), ACCOUNT, "cn-north-1")
    assert statement(policy, "Route53ReadServiceZone")["Resource"] == "arn:aws-cn:route53:::hostedzone/ZABC"
    assert (
        by_action(policy)["lambda:PublishVersion"][0] == f"arn:aws-cn:lambda:cn-north-1:{ACCOUNT}:function:lego-api-moc"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"account_id": "12345"}, "account id must be 12 digits, got '12345'"),
        ({"region": "Ireland"}, "region must look like 'us-east-1', got 'Ireland'"),
        ({"hosted_zone_id": "lego-mocs.com"}, "hosted zone id must look like 'Z0123456789ABC'"),
        ({"hosted_zone_id": None}, "hosted zone 'lego-mocs.com' of lego-api is a name; give its id"),
        ({"artifact_buckets": ["Bad_Bucket"]}, r"not S3 bucket names: \['Bad_Bucket'\]"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs, message):
    args = {"account_id": ACCOUNT, "region": REGION, "hosted_zone_id": ZONE, **kwargs}
    with pytest.raises(IamPolicyError, match=message):
        policy_for(spec(), args.pop("account_id"), args.pop("region"), **args)


def test_a_template_placeholder_without_a_value_is_an_error():
    values = values_for(spec(), account_id=ACCOUNT, region=REGION, hosted_zone_id=ZONE)
    del values["Partition"]
    with pytest.raises(IamPolicyError, match=r"placeholder \$\{Partition\} has no value"):
        render(template(), values)

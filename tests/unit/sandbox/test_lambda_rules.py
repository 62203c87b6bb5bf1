"""Lambda never gives a version number twice, also after versions were deleted (moto would)."""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest
from moto import mock_aws

from bluegreen_provider.sandbox import lambda_rules


def package(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", f"def handler(event, context):\n    return {text!r}\n")
    return buffer.getvalue()


@pytest.fixture
def lam():
    lambda_rules.install()
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        client = boto3.client("lambda", region_name="us-east-1")
        client.create_function(
            FunctionName="fn", Runtime="python3.11", Role=role, Handler="handler.handler",
            Code={"ZipFile": package("v0")},
        )  # fmt: skip
        yield client


def publish(lam, text: str) -> str:
    lam.update_function_code(FunctionName="fn", ZipFile=package(text))
    return lam.publish_version(FunctionName="fn")["Version"]


def test_a_version_number_is_never_given_twice_after_pruning(lam) -> None:
    assert [publish(lam, f"v{n}") for n in (1, 2, 3, 4)] == ["1", "2", "3", "4"]
    lam.delete_function(FunctionName="fn", Qualifier="1")
    lam.delete_function(FunctionName="fn", Qualifier="2")
    fifth = publish(lam, "v5")
    assert fifth == "5"  # moto alone would number it 3, a version that still exists
    code = lam.get_function(FunctionName="fn", Qualifier=fifth)["Configuration"]["CodeSha256"]
    assert code != lam.get_function(FunctionName="fn", Qualifier="3")["Configuration"]["CodeSha256"]
    lam.delete_function(FunctionName="fn", Qualifier="5")
    assert publish(lam, "v6") == "6"  # the highest ever published, even when it was deleted


def test_publishing_without_a_change_returns_the_last_version(lam) -> None:
    assert publish(lam, "v1") == "1"
    assert lam.publish_version(FunctionName="fn")["Version"] == "1"


def test_every_alias_update_gets_a_new_revision_and_a_stale_one_is_refused(lam) -> None:
    one, two = publish(lam, "a"), publish(lam, "b")
    created = lam.create_alias(FunctionName="fn", Name="production", FunctionVersion=one)["RevisionId"]
    moved = lam.update_alias(
        FunctionName="fn", Name="production", RoutingConfig={"AdditionalVersionWeights": {two: 0.1}}, RevisionId=created
    )["RevisionId"]
    assert moved != created and lam.get_alias(FunctionName="fn", Name="production")["RevisionId"] == moved
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.update_alias(FunctionName="fn", Name="production", FunctionVersion=two, RevisionId=created)
    alias = lam.get_alias(FunctionName="fn", Name="production")
    assert (alias["FunctionVersion"], alias["RoutingConfig"]) == (one, {"AdditionalVersionWeights": {two: 0.1}})


@pytest.mark.parametrize(
    "weights",
    [{"2": 0.1, "3": 0.1}, {"1": 0.5}, {"$LATEST": 0.5}, {"2": 1.5}],
    ids=["two-extra-versions", "the-primary-itself", "latest", "above-1"],
)
def test_routing_lambda_refuses_is_refused(lam, weights) -> None:
    for text in ("a", "b", "c"):
        publish(lam, text)
    lam.create_alias(FunctionName="fn", Name="production", FunctionVersion="1")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_alias(FunctionName="fn", Name="production", RoutingConfig={"AdditionalVersionWeights": weights})
    assert lam.get_alias(FunctionName="fn", Name="production").get("RoutingConfig") is None

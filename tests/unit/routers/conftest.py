"""A moto world for the routers: a zone with the state record's parent and two functions with blue/green aliases.

Read back with plain boto3, never through the code under test.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import DeploymentState, ServiceState, acquire, record_release
from tests.unit.weighted_zone import create_weighted_zone, records, split_of, state_of

RECORD = "api.example.com"
FUNCTIONS = ("orders", "gallery")
V1 = {"orders": "1", "gallery": "1"}
V2 = {"orders": "2", "gallery": "2"}
RUN1, RUN2 = "deploy/run1", "deploy/run2"
REGION = "us-east-1"


def _zip(body: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", body)
    return buf.getvalue()


class AliasWorld:
    """Versions 1 and 2 of each function; production-blue -> 1, production-green -> 2, production -> 1."""

    def __init__(self, router: str = "lambda_alias") -> None:
        self.route53 = boto3.client("route53", region_name=REGION)
        self.lam = boto3.client("lambda", region_name=REGION)
        self.zone_id = create_weighted_zone(self.route53, "example.com", RECORD, caller_reference="routers")
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="bluegreen-routers", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        for fn in FUNCTIONS:
            self.lam.create_function(
                FunctionName=fn, Runtime="python3.12", Role=role, Handler="app.handler", Code={"ZipFile": _zip("1")}
            )
            self.lam.publish_version(FunctionName=fn)
            self.lam.update_function_code(FunctionName=fn, ZipFile=_zip("2"))
            self.lam.publish_version(FunctionName=fn)
            self.lam.create_alias(FunctionName=fn, Name="production-blue", FunctionVersion="1")
            self.lam.create_alias(FunctionName=fn, Name="production-green", FunctionVersion="2")
            self.lam.create_alias(FunctionName=fn, Name="production", FunctionVersion="1")
        self.spec = DeploymentSpec.from_dict(
            {
                "service": "orders-api",
                "hosted_zone": "example.com",
                "record_name": RECORD,
                "router": router,
                "functions": [{"name": fn, "version": "2"} for fn in FUNCTIONS],
            }
        )

    def service(self) -> ServiceState:
        """A fresh hook and service per actor, as separate Airflow tasks would have."""
        return ServiceState(
            Route53Hook(aws_conn_id=None), self.zone_id, self.spec, lambdas=LambdaAliasHook(aws_conn_id=None)
        )

    def alias(self, fn: str, name: str = "production") -> dict[str, Any]:
        raw = self.lam.get_alias(FunctionName=fn, Name=name)
        return {
            "version": raw["FunctionVersion"],
            "weights": (raw.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {},
            "description": raw.get("Description", ""),
        }

    def aliases(self) -> dict[str, dict[str, Any]]:
        return {fn: self.alias(fn) for fn in FUNCTIONS}

    def records(self) -> list[dict[str, Any]]:
        return records(self.route53, self.zone_id)

    def weights(self) -> dict[str, int]:
        return split_of(self.records())

    def state(self) -> DeploymentState | None:
        return state_of(self.records())


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def world(aws_env) -> Iterator[AliasWorld]:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield AliasWorld()


@pytest.fixture
def route53_world(aws_env) -> Iterator[AliasWorld]:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield AliasWorld(router="route53")


def always_active(_: str) -> bool:
    return True


def planned(world: AliasWorld, owner: str = RUN1) -> ServiceState:
    """The plan and the deploy of a run: blue live on version 1, green serving version 2 at 0 %."""
    svc = world.service()
    acquire(svc, owner, live_versions=V1, run_is_active=always_active)
    record_release(svc, owner, V2)
    return svc

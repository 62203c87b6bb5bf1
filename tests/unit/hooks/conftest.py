"""Fixtures for the hook tests: fake credentials and an in-process moto for every AWS call."""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest
from moto import mock_aws

REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials so nothing can reach a real account."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def moto(aws_env):
    """Mocked AWS; Lambda invokes run without Docker (they echo the event and always succeed)."""
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield


def make_zip(body: str) -> bytes:
    """A tiny Lambda deployment package holding ``app.py``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", body)
    return buf.getvalue()


@pytest.fixture
def lambda_role(moto) -> str:
    iam = boto3.client("iam", region_name=REGION)
    return iam.create_role(RoleName="bluegreen-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]

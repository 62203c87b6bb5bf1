"""``bluegreen iam-policy``: the service's least-privilege policy as JSON on stdout, or one line why not."""

from __future__ import annotations

import json

import pytest

from .conftest import DAGS

ACCOUNT = "123456789012"


@pytest.fixture(autouse=True)
def _registry_left_as_found(lego_spec):
    """The CLI reads the DAG files into the service registry; put it back afterwards."""


def test_prints_the_policy_for_the_service(bluegreen):
    result = bluegreen(
        "--dags-folder", str(DAGS), "iam-policy", "--service", "lego-api", "--account-id", ACCOUNT,
        "--region", "us-east-1", "--hosted-zone-id", "Z0123456789ABC", "--artifact-bucket", "artifacts",
    )  # fmt: skip
    assert (result.code, result.err) == (0, "")
    policy = json.loads(result.out[result.out.index("{\n") :])
    assert policy["Version"] == "2012-10-17"
    resources = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert resources["Route53ReadServiceZone"] == "arn:aws:route53:::hostedzone/Z0123456789ABC"
    assert resources["LambdaFetchesS3ReleasesAsCaller"] == ["arn:aws:s3:::artifacts/*"]
    assert f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:lego-api-moc:*" in resources["LambdaReleaseServiceFunctions"]


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (
            ["--service", "lego-api", "--account-id", "42", "--region", "us-east-1", "--hosted-zone-id", "Z1"],
            2,
            "bluegreen iam-policy: account id must be 12 digits, got '42'",
        ),
        (
            ["--service", "nope", "--account-id", ACCOUNT, "--region", "us-east-1"],
            2,
            "bluegreen iam-policy: unknown service 'nope'",
        ),
        (
            ["--service", "lego-api", "--region", "us-east-1"],
            2,
            "bluegreen iam-policy: the following arguments are required: --account-id",
        ),
    ],
)
def test_bad_input_is_one_line(bluegreen, args, code, line):
    result = bluegreen("--dags-folder", str(DAGS), "iam-policy", *args)
    assert result.code == code and result.out == ""
    assert result.error_line.startswith(line), result.error_line


def test_a_zone_named_by_name_is_looked_up_and_says_why_it_cannot_be(bluegreen, no_credentials):
    result = bluegreen(
        "--dags-folder", str(DAGS), "iam-policy", "--service", "lego-api", "--account-id", ACCOUNT,
        "--region", "us-east-1",
    )  # fmt: skip
    assert result.code == 1 and "{" not in result.out
    assert result.error_line.startswith("bluegreen iam-policy: no AWS credentials for connection aws_default")

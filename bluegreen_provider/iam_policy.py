"""The least-privilege IAM policy a service's deployments need, rendered from its config.

The template (``iam/bluegreen-policy.json``, shipped with the package) lists only the actions the
provider calls. Its placeholders are filled from a :class:`~bluegreen_provider.spec.DeploymentSpec`,
which knows the hosted zone, the records, the functions, the alarms and the notification topic: a
list placeholder (``["${FunctionArns}"]``) becomes that many ARNs, and a statement left with no
resource (no alarms, no SNS, no S3 releases) is dropped rather than granted on nothing.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from bluegreen_provider.spec import DeploymentSpec

TEMPLATE = "iam/bluegreen-policy.json"
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ZONE_ID_RE = re.compile(r"^(/hostedzone/)?[A-Z0-9]+$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z]+)\}")


class IamPolicyError(ValueError):
    """An account, region, zone or bucket the policy cannot be written for."""


def template() -> dict[str, Any]:
    """The policy template as shipped, placeholders and all."""
    return json.loads(resources.files("bluegreen_provider").joinpath(TEMPLATE).read_text())


def partition(region: str) -> str:
    """The ARN partition of a region: ``aws``, ``aws-cn`` or ``aws-us-gov``."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def zone_id_of(spec: DeploymentSpec) -> str | None:
    """The bare hosted zone id when the spec gives an id; None when it names the zone by DNS name."""
    zone = spec.hosted_zone.strip()
    return zone.rsplit("/", 1)[-1] if _ZONE_ID_RE.match(zone) else None


def _artifact_buckets(spec: DeploymentSpec) -> list[str]:
    """Buckets the spec itself releases from (its default release and functions with their own S3 key)."""
    buckets = [spec.release.s3_bucket] if spec.release is not None and spec.release.s3_bucket else []
    return buckets + [f.s3_bucket for f in spec.functions if f.s3_bucket]


def values_for(
    spec: DeploymentSpec,
    *,
    account_id: str,
    region: str,
    hosted_zone_id: str | None = None,
    artifact_buckets: Iterable[str] = (),
) -> dict[str, str | list[str]]:
    """What each placeholder of the template stands for, for this service."""
    if not isinstance(account_id, str) or not _ACCOUNT_RE.match(account_id):
        raise IamPolicyError(f"account id must be 12 digits, got {account_id!r}")
    if not isinstance(region, str) or not _REGION_RE.match(region):
        raise IamPolicyError(f"region must look like 'us-east-1', got {region!r}")
    if hosted_zone_id is not None and not _ZONE_ID_RE.match(hosted_zone_id.strip()):
        raise IamPolicyError(f"hosted zone id must look like 'Z0123456789ABC', got {hosted_zone_id!r}")
    zone = hosted_zone_id.strip().rsplit("/", 1)[-1] if hosted_zone_id else zone_id_of(spec)
    if zone is None:
        raise IamPolicyError(
            f"hosted zone {spec.hosted_zone!r} of {spec.service} is a name; give its id (--hosted-zone-id)"
        )
    buckets = list(dict.fromkeys([*_artifact_buckets(spec), *artifact_buckets]))
    bad = [b for b in buckets if not isinstance(b, str) or not _BUCKET_RE.match(b)]
    if bad:
        raise IamPolicyError(f"not S3 bucket names: {bad}")
    from bluegreen_provider.state import state_record_name

    part = partition(region)
    functions = [
        f.name if f.name.startswith("arn:") else f"arn:{part}:lambda:{region}:{account_id}:function:{f.name}"
        for f in spec.functions
    ]
    topics = [spec.notifications.sns.target_arn] if spec.notifications and spec.notifications.sns else []
    return {
        "Partition": part,
        "HostedZoneId": zone,
        # Route53 compares record names lowercased and without the trailing dot.
        "RecordNames": [n.lower().rstrip(".") for n in (spec.record_name, state_record_name(spec))],
        "RecordTypes": list(dict.fromkeys([spec.record_type.upper(), "TXT"])),
        "FunctionArns": [arn for f in functions for arn in (f, f"{f}:*")],
        "FunctionQualifierArns": [f"{f}:*" for f in functions],
        "ArtifactObjectArns": [f"arn:{part}:s3:::{b}/*" for b in buckets],
        "AlarmArns": [f"arn:{part}:cloudwatch:{region}:{account_id}:alarm:{a}" for a in spec.alarms],
        "SnsTopicArns": topics,
    }


def render(policy_template: Mapping[str, Any], values: Mapping[str, str | list[str]]) -> dict[str, Any]:
    """Fill the placeholders; drop the statements left with no resource.

    :raises IamPolicyError: the template names a placeholder ``values`` does not have.
    """

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            out: list[Any] = []
            for item in node:
                whole = _PLACEHOLDER_RE.fullmatch(item) if isinstance(item, str) else None
                if whole and isinstance(values.get(whole.group(1)), list):
                    out += values[whole.group(1)]
                else:
                    out.append(fill(item))
            return out
        if isinstance(node, str):
            return _PLACEHOLDER_RE.sub(scalar, node)
        return node

    def scalar(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if not isinstance(value, str):
            raise IamPolicyError(f"policy template placeholder ${{{match.group(1)}}} has no value")
        return value

    policy = fill(copy.deepcopy(dict(policy_template)))
    policy["Statement"] = [s for s in policy["Statement"] if s["Resource"]]
    return policy


def policy_for(
    spec: DeploymentSpec,
    account_id: str,
    region: str,
    *,
    hosted_zone_id: str | None = None,
    artifact_buckets: Iterable[str] = (),
) -> dict[str, Any]:
    """The IAM policy document the connection deploying ``spec`` needs, and nothing more.

    :param spec: the service config.
    :param account_id: the AWS account of the functions and alarms.
    :param region: their region (Route53 is global).
    :param hosted_zone_id: the zone's id, needed when the spec names the zone by DNS name.
    :param artifact_buckets: buckets runs release code from (Lambda reads them with the caller's rights),
        besides those the spec names itself.
    """
    values = values_for(
        spec, account_id=account_id, region=region, hosted_zone_id=hosted_zone_id, artifact_buckets=artifact_buckets
    )
    return render(template(), values)

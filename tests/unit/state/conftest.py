"""A moto zone with the weighted record ``api.example.com`` (blue 100 / green 0) and its spec."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import DeploymentState, ServiceState, acquire, record_release, shift
from tests.unit.weighted_zone import create_weighted_zone, records, split_of, state_of

RECORD = "api.example.com"
FUNCTIONS = ("orders", "gallery")
V1 = {"orders": "1", "gallery": "1"}
V2 = {"orders": "2", "gallery": "2"}
RUN1, RUN2 = "deploy/run1", "deploy/run2"


class Zone:
    """The zone read back with plain boto3 (never through the code under test)."""

    def __init__(self) -> None:
        self.client = boto3.client("route53", region_name="us-east-1")
        self.zone_id = create_weighted_zone(self.client, "example.com", RECORD, caller_reference="state")
        self.spec = DeploymentSpec.from_dict(
            {
                "service": "orders-api",
                "hosted_zone": "example.com",
                "record_name": RECORD,
                "functions": [{"name": fn, "version": "1"} for fn in FUNCTIONS],
            }
        )

    def service(self) -> ServiceState:
        """A fresh hook and service per actor, as separate Airflow tasks would have."""
        return ServiceState(Route53Hook(aws_conn_id=None), self.zone_id, self.spec)

    def records(self) -> list[dict[str, Any]]:
        return records(self.client, self.zone_id)

    def split(self) -> dict[str, int]:
        return split_of(self.records())

    def state(self) -> DeploymentState | None:
        return state_of(self.records())


@pytest.fixture
def zone() -> Iterator[Zone]:
    with mock_aws():
        yield Zone()


def never_active(_: str) -> bool:
    return False


def always_active(_: str) -> bool:
    return True


def planned(zone: Zone, owner: str = RUN1, versions: dict[str, str] = V2, live_versions: dict[str, str] = V1):
    """The plan and the deploy of a run, as its first stages leave them (candidate at weight 0)."""
    svc = zone.service()
    acquire(svc, owner, live_versions=live_versions, run_is_active=always_active)
    record_release(svc, owner, versions)
    return svc


def promoted(zone: Zone, owner: str = RUN1, retention: int = 3600):
    """A run promoted through 10 % to 100 %, retaining its old slot for ``retention`` seconds."""
    svc = planned(zone, owner)
    shift(svc, owner, 10, previous_pct=0, serving=V2)
    shift(svc, owner, 100, previous_pct=10, serving=V2, retention_seconds=retention)
    return svc

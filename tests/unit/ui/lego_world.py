"""The lego sandbox world the overview's tests read, put in place through the real state transitions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest

from bluegreen_provider.dag_factory import REGISTERED_SERVICES
from bluegreen_provider.state import DeploymentState, decode_txt, owner_of

from .dags import lego_stubs

REPO = Path(__file__).resolve().parents[3]
DEPLOY_DAG = lego_stubs.DEPLOY_DAG_ID
FIRING = "lego-api-moc-errors"
PREVIOUS_OWNER = "blue_green_deploy/manual__previous"


def serving(lambda_, spec, slot: str) -> dict[str, str]:
    """What each function's alias of ``slot`` serves, read from the sandbox."""
    alias = spec.slots[slot].alias
    return {fn.name: lambda_.get_alias(FunctionName=fn.name, Name=alias)["FunctionVersion"] for fn in spec.functions}


def recorded_state(sandbox) -> DeploymentState:
    """The deployment state record, read back with the sandbox's own client."""
    records = sandbox.clients()("route53").list_resource_record_sets(HostedZoneId=sandbox.hosted_zone_id)
    txt = [r for r in records["ResourceRecordSets"] if r["Type"] == "TXT" and r["Name"].startswith("_bluegreen.")]
    assert len(txt) == 1, txt
    return DeploymentState.from_json(decode_txt(" ".join(v["Value"] for v in txt[0]["ResourceRecords"])))


@contextmanager
def lego_world(retention_seconds: int | None = None) -> Iterator[dict]:
    """A sandbox where a run of the stand-in deployment DAG released v2 of ``lego-api-moc`` into green
    and shifted 10 % to it, through the state transitions the stages use.

    With ``retention_seconds`` it is the previous deployment instead, which promoted green and retains blue.
    """
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.sandbox import Sandbox
    from bluegreen_provider.state import ServiceState, acquire, record_release, shift

    lock_run = lego_stubs.deploy.test()
    owner = PREVIOUS_OWNER if retention_seconds else owner_of(DEPLOY_DAG, lock_run.run_id)
    with Sandbox(rate_per_second=0.5) as sandbox, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", sandbox.connection_json())
        mp.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
        lambda_ = sandbox.clients()("lambda")
        with mock.patch.dict(REGISTERED_SERVICES):  # the DAG files register into it; leave it as found
            from bluegreen_provider.cli import load_services

            spec = load_services(REPO / "dags")["lego-api"]
            svc = ServiceState(Route53Hook(aws_conn_id="aws_default"), sandbox.hosted_zone_id, spec)
            acquire(svc, owner, live_versions=serving(lambda_, spec, "blue"), run_is_active=lambda _: True)
            lambda_.update_function_code(FunctionName="lego-api-moc", ZipFile=sandbox.catalog["v2"].zip_bytes)
            version = lambda_.publish_version(FunctionName="lego-api-moc", Description="v2")["Version"]
            assert version != "1"
            lambda_.update_alias(FunctionName="lego-api-moc", Name="production-green", FunctionVersion=version)
            green = serving(lambda_, spec, "green")
            record_release(svc, owner, green)
            shift(svc, owner, 10, previous_pct=0, serving=green)
            if retention_seconds:
                shift(svc, owner, 100, previous_pct=10, serving=green, retention_seconds=retention_seconds)
            sandbox.force_alarm(FIRING)
            yield {"version": version, "run_id": lock_run.run_id, "owner": owner, "state": recorded_state(sandbox)}

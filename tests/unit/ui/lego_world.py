"""The sandbox world the overview's tests read, put in place through the real state transitions.

The service is the test bundle's (``dags/oncall_dags.py``): the lego API's config under a name of its
own, stored serialized the way the DAG processor stores it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import DeploymentState, decode_txt, owner_of

from .conftest import start_run
from .dags import oncall_dags

DEPLOY_DAG = oncall_dags.DEPLOY_DAG_ID
FIRING = "lego-api-moc-errors"
PREVIOUS_OWNER = f"{DEPLOY_DAG}/manual__previous"


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
    """A sandbox where a run of the service's deployment DAG released v2 of ``lego-api-moc`` into green
    and shifted 10 % to it, through the state transitions the stages use.

    With ``retention_seconds`` it is the previous deployment instead, which promoted green and retains blue.
    """
    import pytest

    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.sandbox import Sandbox
    from bluegreen_provider.state import ServiceState, acquire, record_release, shift

    run_id = start_run(DEPLOY_DAG)
    owner = PREVIOUS_OWNER if retention_seconds else owner_of(DEPLOY_DAG, run_id)
    spec = DeploymentSpec.from_dict(oncall_dags.CONFIG)
    with Sandbox(rate_per_second=0.5) as sandbox, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", sandbox.connection_json())
        lambda_ = sandbox.clients()("lambda")
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
        yield {
            "version": version,
            "run_id": run_id,
            "owner": owner,
            "state": recorded_state(sandbox),
            "svc": svc,
            "sandbox": sandbox,
        }

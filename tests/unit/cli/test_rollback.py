"""``bluegreen rollback`` against a sandbox mid-deployment: traffic back on live, read back from Route53."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator

import pytest

from bluegreen_provider.sandbox import Sandbox

from .conftest import DAGS

OWNER = "blue_green_deploy/manual__cli"
USER = getpass.getuser()


@pytest.fixture
def mid_deployment(lego_spec, monkeypatch) -> Iterator[Sandbox]:
    """A deployment of v2 into green holding 10 %, put in place through the state transitions the stages use."""
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.state import ServiceState, acquire, record_release, shift

    with Sandbox(rate_per_second=0.5) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", sandbox.connection_json())
        lambda_ = sandbox.clients()("lambda")
        svc = ServiceState(Route53Hook(aws_conn_id="aws_default"), sandbox.hosted_zone_id, lego_spec)
        live = {fn.name: "1" for fn in lego_spec.functions}
        acquire(svc, OWNER, live_versions=live, run_is_active=lambda _: True)
        green = {}
        for fn in lego_spec.functions:
            lambda_.update_function_code(FunctionName=fn.name, ZipFile=sandbox.catalog["v2"].zip_bytes)
            green[fn.name] = lambda_.publish_version(FunctionName=fn.name, Description="v2")["Version"]
            lambda_.update_alias(FunctionName=fn.name, Name="production-green", FunctionVersion=green[fn.name])
        record_release(svc, OWNER, green)
        shift(svc, OWNER, 10, previous_pct=0, serving=green)
        assert sandbox.weights() == {"blue": 90, "green": 10}
        yield sandbox


def test_rollback_puts_all_traffic_back_on_live_once(bluegreen, mid_deployment):
    result = bluegreen("--dags-folder", str(DAGS), "rollback", "--service", "lego-api")
    assert (result.code, result.err) == (0, "")
    summary = json.loads(result.out[result.out.index("{\n") :])
    assert summary["split_before"] == {"blue": 90, "green": 10}
    assert summary["split_after"] == {"blue": 100, "green": 0}
    assert (summary["changed"], summary["insync"], summary["live"]) == (True, True, "blue")
    assert mid_deployment.weights() == {"blue": 100, "green": 0}  # what Route53 holds now

    again = bluegreen("--dags-folder", str(DAGS), "rollback", "--service", "lego-api")
    assert again.code == 2
    assert again.error_line.startswith("bluegreen rollback: refused: nothing to roll back")
    assert mid_deployment.weights() == {"blue": 100, "green": 0}

    status = bluegreen("--dags-folder", str(DAGS), "status")
    assert status.code == 0, status.err
    report = status.report("lego-api")
    assert report[1] == "  split:     blue 100 / green 0"
    generation = summary["generation"]
    assert report[2] == f"  state:     aborted (generation {generation}, run {OWNER}): manual rollback by cli:{USER}"

"""The shipped IAM policy against what the provider really calls: every AWS operation of a bad release's
rollback, a promotion with teardown, ``bluegreen status`` and ``bluegreen rollback`` is recorded, and

- every call is one the rendered policy allows, on the resource the call names (function and qualifier,
  zone, record names and types, health check, alarm, topic);
- every action the policy grants was called, or is listed below with why these runs cannot reach it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest

from bluegreen_provider.cli import main
from bluegreen_provider.dag_factory import REGISTERED_SERVICES

from .aws_calls import AwsCall, Recording, recording_aws_calls
from .conftest import E2E_DAGS, deployment_state
from .test_deploy_dag import FUNCTIONS, alias_versions, publish_older_versions

pytestmark = pytest.mark.e2e

SERVICE = "lego-api-audited"
ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's account, the sandbox's region
OWNER = "e2e_audited/manual__cli"

# botocore's operation name -> IAM action, where they differ.
ACTION_OF = {("lambda", "Invoke"): "lambda:InvokeFunction"}
# Granted by the policy, not reached by these runs.
NOT_EXERCISED = {
    "route53:GetHostedZone": "checks a zone given by id (and a record's zone, in an error); the lego "
    "services name their zone by DNS name, found with ListHostedZones",
    "route53:UpdateHealthCheck": "only when a run's own health check (same caller reference) has other "
    "settings than the config now asks: the health stage re-run after the config changed",
    "lambda:CreateAlias": "only on a slot's first deployment; the sandbox seeds both slots' aliases",
}
# Called only to suggest similar names when something configured is missing; the policy withholds
# them (ListFunctions would show every function's environment) and the hooks say "not listed" when
# AWS refuses.
MAY_BE_DENIED = {"lambda:ListFunctions", "cloudwatch:DescribeAlarms by prefix"}


# -- the policy, evaluated as IAM does for Allow statements ------------------------------------------


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.I)


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, list[str]]) -> bool:
    for operator, keys in condition.items():
        if operator != "ForAllValues:StringEquals":
            raise AssertionError(f"condition operator {operator} is not evaluated here; teach the test")
        for key, allowed in keys.items():
            if key not in context or not set(context[key]) <= set(allowed):
                return False
    return True


def allows(policy: Mapping[str, Any], action: str, resource: str, context: Mapping[str, list[str]]) -> bool:
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if (
            statement["Effect"] == "Allow"
            and any(_wildcard(a).fullmatch(action) for a in actions)
            and any(_wildcard(r).fullmatch(resource) for r in resources)
            and _condition_holds(statement.get("Condition", {}), context)
        ):
            return True
    return False


def granted_actions(policy: Mapping[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


# -- what each call asks for --------------------------------------------------------------------------


def action_of(call: AwsCall) -> str:
    return ACTION_OF.get((call.service, call.operation), f"{call.service}:{call.operation}")


def _bare(value: str) -> str:
    return value.rsplit("/", 1)[-1]


def request_of(call: AwsCall) -> tuple[list[str], dict[str, list[str]]]:
    """The resource ARNs IAM authorizes the call against, and the condition keys it carries."""
    p = call.params
    if call.service == "route53":
        if "HostedZoneId" in p:
            context = {}
            if call.operation == "ChangeResourceRecordSets":
                records = [c["ResourceRecordSet"] for c in p["ChangeBatch"]["Changes"]]
                context = {
                    "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                        r["Name"].lower().rstrip(".") for r in records
                    ],
                    "route53:ChangeResourceRecordSetsRecordTypes": [r["Type"] for r in records],
                }
            return [f"arn:aws:route53:::hostedzone/{_bare(p['HostedZoneId'])}"], context
        if call.operation == "GetHostedZone":
            return [f"arn:aws:route53:::hostedzone/{_bare(p['Id'])}"], {}
        if call.operation == "GetChange":
            return [f"arn:aws:route53:::change/{_bare(p['Id'])}"], {}
        if "HealthCheckId" in p:
            return [f"arn:aws:route53:::healthcheck/{p['HealthCheckId']}"], {}
        if "ResourceType" in p:
            return [f"arn:aws:route53:::{p['ResourceType']}/{p['ResourceId']}"], {}
        return ["*"], {}
    if call.service == "lambda":
        if "FunctionName" not in p:
            return ["*"], {}
        arn = f"arn:aws:lambda:{call.region}:{ACCOUNT}:function:{p['FunctionName']}"
        return [f"{arn}:{p['Qualifier']}" if p.get("Qualifier") else arn], {}
    if call.service == "cloudwatch":
        if call.operation == "DescribeAlarms" and "AlarmNames" in p:
            return [f"arn:aws:cloudwatch:{call.region}:{ACCOUNT}:alarm:{n}" for n in p["AlarmNames"]], {}
        return ["*"], {}
    if call.service == "sns":
        return [p.get("TopicArn") or p["TargetArn"]], {}
    raise AssertionError(f"the provider called a service the policy does not know: {call}")


def refusals(policy: Mapping[str, Any], calls: list[AwsCall]) -> list[str]:
    """Every call the policy would refuse, once per kind, except those whose refusal the code handles."""
    refused = {}
    for call in calls:
        action = action_of(call)
        if action in MAY_BE_DENIED or (action == "cloudwatch:DescribeAlarms" and "AlarmNamePrefix" in call.params):
            continue
        resources, context = request_of(call)
        for resource in resources:
            if not allows(policy, action, resource, context):
                refused[(action, resource)] = f"{action} on {resource} {context or ''} ({call.params})"
    return sorted(refused.values())


# -- the runs ---------------------------------------------------------------------------------------------


@contextmanager
def services_left_as_found() -> Iterator[None]:
    with mock.patch.dict(REGISTERED_SERVICES):
        yield


def bluegreen(capsys, *args: str) -> tuple[int, str, str]:
    """``bluegreen --dags-folder tests/e2e/dags ARGS…`` in this process."""
    capsys.readouterr()
    with services_left_as_found():
        code = main(["--dags-folder", str(E2E_DAGS), *args])
    out, err = capsys.readouterr()
    return code, out, err


def hold_at_10_percent(sandbox) -> None:
    """A deployment of blue's release (the retired slot) holding 10 %, as the stages would leave it."""
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.state import ServiceState, acquire, record_release, shift

    with services_left_as_found():
        from bluegreen_provider.cli import load_services

        spec = load_services(E2E_DAGS)[SERVICE]
    svc = ServiceState(Route53Hook(aws_conn_id="aws_default"), sandbox.hosted_zone_id, spec)
    green, blue = alias_versions(sandbox, "production-green"), alias_versions(sandbox, "production-blue")
    acquire(svc, OWNER, live_versions=green, run_is_active=lambda _: True)
    record_release(svc, OWNER, blue)
    shift(svc, OWNER, 10, previous_pct=0, serving=blue)
    assert sandbox.weights() == {"blue": 10, "green": 90}


def test_the_policy_allows_every_call_the_provider_makes_and_nothing_it_does_not(deploy, sandbox, capsys):
    from .dags.variants import NOTIFIED_TOPIC  # here, not at collection: building the variants registers them

    publish_older_versions(sandbox)  # so the promotion's teardown has versions to prune
    sandbox.clients()("sns").create_topic(Name=NOTIFIED_TOPIC.rsplit(":", 1)[-1])
    code, out, err = bluegreen(capsys, "iam-policy", "--service", SERVICE, "--account-id", ACCOUNT, "--region", REGION)
    assert (code, err) == (0, ""), err
    policy = json.loads(out[out.index("{") :])
    assert policy["Version"] == "2012-10-17"
    zone = next(s for s in policy["Statement"] if s["Sid"] == "Route53ReadServiceZone")
    assert zone["Resource"] == f"arn:aws:route53:::hostedzone/{sandbox.hosted_zone_id}", "the zone, looked up by name"

    recordings: list[Recording] = []
    with recording_aws_calls() as calls:
        bad = deploy("bad", dag_file=E2E_DAGS / "variants.py", dag_name="audited")
        good = deploy("v2", dag_file=E2E_DAGS / "variants.py", dag_name="audited")
        status = bluegreen(capsys, "status", "--service", SERVICE)
    recordings.append(calls)
    assert (bad.state, bad.states["soak_10"], bad.states["rollback"]) == ("failed", "failed", "success"), bad.states
    assert good.state == "success", good.states
    assert good.xcom("deploy_green")["prewarm"], "the prewarm ran"
    assert any(good.xcom("teardown_blue")["pruned"].values()), "teardown pruned versions"
    assert status[0] == 0 and "green live" in status[1], status

    hold_at_10_percent(sandbox)  # not recorded: the stages' own transitions, run by the test
    with recording_aws_calls() as calls:
        rolled = bluegreen(capsys, "rollback", "--service", SERVICE)
    recordings.append(calls)
    assert rolled[0] == 0, rolled
    assert sandbox.weights() == {"blue": 0, "green": 100}
    assert deployment_state(sandbox).phase == "aborted"

    made = [c for r in recordings for c in r.calls]
    unattributed = [c for r in recordings for c in r.unattributed]
    assert not unattributed, f"AWS calls from neither the provider nor the harness: {unattributed}"
    called = {action_of(c) for c in made}
    print(f"{len(made)} AWS calls by the provider, {len(called)} actions: {sorted(called)}")

    refused = refusals(policy, made)
    assert not refused, "the policy refuses calls the provider makes:\n" + "\n".join(refused)
    granted = granted_actions(policy)
    assert granted - called == set(NOT_EXERCISED), (
        f"granted but never called (drop them, or say in NOT_EXERCISED why no run reaches them): "
        f"{sorted(granted - called - set(NOT_EXERCISED))}; listed as not exercised but called: "
        f"{sorted(set(NOT_EXERCISED) & called)}"
    )
    assert called - granted <= MAY_BE_DENIED, sorted(called - granted)

    # The scoping does refuse what a deployment never does.
    fn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTIONS[0]}"
    assert not allows(policy, "lambda:DeleteFunction", fn, {}), "deleting a whole function"
    assert allows(policy, "lambda:DeleteFunction", f"{fn}:2", {})
    assert not allows(policy, "lambda:UpdateFunctionCode", fn.replace("lego-api-moc", "payments"), {})
    names = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
    types = "route53:ChangeResourceRecordSetsRecordTypes"
    other = {names: ["www.lego-mocs.com"], types: ["A"]}
    assert not allows(policy, "route53:ChangeResourceRecordSets", zone["Resource"], other)
    mx = {names: ["api.lego-mocs.com"], types: ["MX"]}
    assert not allows(policy, "route53:ChangeResourceRecordSets", zone["Resource"], mx)
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:billing"
    assert not allows(policy, "cloudwatch:DescribeAlarms", alarm, {})

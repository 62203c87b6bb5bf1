"""The router interface: the service config picks the router, and refuses an unknown one in one line."""

from __future__ import annotations

import pytest

from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.routers import change_phrase, describe, make_router
from bluegreen_provider.routers.lambda_alias import LambdaAliasRouter
from bluegreen_provider.routers.route53 import Route53WeightedRouter
from bluegreen_provider.spec import DeploymentSpec, SpecError

BASE = {
    "service": "orders-api",
    "hosted_zone": "example.com",
    "record_name": "api.example.com",
    "functions": [{"name": "orders", "version": "2"}],
}


def test_route53_is_the_default_router(aws_env):
    spec = DeploymentSpec.from_dict(BASE)
    assert spec.router == "route53"
    assert isinstance(make_router(spec, Route53Hook(aws_conn_id=None), "Z1"), Route53WeightedRouter)


def test_lambda_alias_router_uses_the_region_of_its_lambda_hook(aws_env):
    spec = DeploymentSpec.from_dict({**BASE, "router": "lambda_alias"})
    lambdas = LambdaAliasHook(aws_conn_id=None, region_name="eu-west-1")
    router = make_router(spec, Route53Hook(aws_conn_id=None), "Z1", lambdas=lambdas)
    assert isinstance(router, LambdaAliasRouter) and router.lambdas is lambdas and router.alias == "production"
    assert router.source == "Lambda alias production"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"router": "nginx"}, "router must be one of 'route53', 'lambda_alias', got 'nginx'"),
        ({"router": "lambda_alias", "live_alias": "production-blue"}, "live_alias 'production-blue' must differ"),
        ({"router": "lambda_alias", "live_alias": "12"}, "live_alias: invalid Lambda alias name '12'"),
        (
            {
                "router": "lambda_alias",
                "metrics_source": "apigateway",
                "slots": {
                    "blue": {"set_identifier": "blue", "alias": "production-blue", "api_name": "a-blue"},
                    "green": {"set_identifier": "green", "alias": "production-green", "api_name": "a-green"},
                },
            },
            "router 'lambda_alias' judges each version on Lambda's ExecutedVersion metrics",
        ),
    ],
)
def test_a_bad_router_config_is_one_clear_line(extra, problem):
    with pytest.raises(SpecError) as err:
        DeploymentSpec.from_dict({**BASE, **extra})
    lines = [p for p in err.value.problems if problem in p]
    assert len(lines) == 1 and "\n" not in lines[0]


def test_describe_names_the_slots():
    spec = DeploymentSpec.from_dict(BASE)
    assert describe(spec, {"green": 10, "blue": 90}) == "blue 90 / green 10"


def test_a_dry_run_names_the_change_the_router_makes():
    assert change_phrase(DeploymentSpec.from_dict(BASE)) == "set Route53 weights"
    aliased = DeploymentSpec.from_dict({**BASE, "router": "lambda_alias", "live_alias": "live"})
    assert change_phrase(aliased) == "route each function's live alias"

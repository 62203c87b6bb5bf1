"""A service added to a running sandbox: its health URL answers from its own aliases, lego-api's traffic goes on."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from bluegreen_provider.sandbox import Sandbox, world

SHOP = world.ServiceWorld(
    name="brick-shop",
    zone_name="brick-shop.test",
    record_name="api.brick-shop.test",
    functions=("brick-shop-orders", "brick-shop-cart"),
)


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_an_added_service_answers_its_own_health_url(sandbox: Sandbox) -> None:
    lego_weights = sandbox.weights()
    zone_id = sandbox.add_service(SHOP)

    assert zone_id != sandbox.hosted_zone_id
    assert sandbox.service_weights("brick-shop") == {"blue": 100, "green": 0}
    assert get(f"{sandbox.http_url}{SHOP.health_path('blue')}") == (200, {"status": "ok", "release": "v1"})

    # Point green's first function at the unhealthy build: only brick-shop's green health fails.
    lambda_ = sandbox.clients()("lambda")
    lambda_.update_function_code(FunctionName="brick-shop-orders", ZipFile=sandbox.catalog["unhealthy"].zip_bytes)
    version = lambda_.publish_version(FunctionName="brick-shop-orders")["Version"]
    lambda_.update_alias(FunctionName="brick-shop-orders", Name="production-green", FunctionVersion=version)
    status, body = get(f"{sandbox.http_url}{SHOP.health_path('green')}")
    assert (status, body["release"]) == (503, "unhealthy")
    assert get(f"{sandbox.http_url}{SHOP.health_path('blue')}")[0] == 200
    assert get(f"{sandbox.http_url}/green/health") == (200, {"status": "ok", "release": "v1"}), "lego-api's own"

    assert get(f"{sandbox.http_url}/services/nobody/blue/health")[0] == 404
    with pytest.raises(KeyError, match="no service 'nobody'"):
        sandbox.service_weights("nobody")
    assert sandbox.weights() == lego_weights
    assert set(sandbox.stats()["blue"]["functions"]) == set(world.FUNCTIONS), "traffic stays lego-api's"

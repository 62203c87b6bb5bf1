"""Test-only Airflow DAG: a second blue/green service beside lego-api, for deploying two services at once.

Its own zone, record and functions, seeded into the sandbox with ``Sandbox.add_service(SHOP)``. No
traffic reaches it, so its soaks see no requests and pass on ``no_data_policy: pass``; its health
URLs are the sandbox's ``/services/brick-shop/<slot>/health``.
"""

from __future__ import annotations

import os
from pathlib import Path

from bluegreen_provider.dag_factory import deployment_dag
from bluegreen_provider.sandbox.world import ServiceWorld

SHOP = ServiceWorld(
    name="brick-shop",
    zone_name="brick-shop.test",
    record_name="api.brick-shop.test",
    functions=("brick-shop-orders", "brick-shop-cart"),
)
DAG_ID = "chaos_brick_shop_deploy"

_releases = Path(os.environ.get("BLUEGREEN_RELEASES_DIR", Path(__file__).resolve().parents[3] / ".sandbox/releases"))
_health = os.environ.get("BLUEGREEN_HEALTH_BASE_URL", "http://127.0.0.1:5056")

BRICK_SHOP = {
    "service": SHOP.name,
    "hosted_zone": SHOP.zone_name,
    "record_name": SHOP.record_name,
    "functions": [{"name": name} for name in SHOP.functions],
    "release": {"zip_file": str(_releases / "v2.zip")},
    "slots": {
        slot: {
            "set_identifier": slot,
            "alias": f"production-{slot}",
            "health_url": f"{_health}{SHOP.health_path(slot)}",
            "health_check_fqdn": SHOP.slot_dns_name(slot),
        }
        for slot in ("blue", "green")
    },
    "metrics_source": "lambda",
    "no_data_policy": "pass",
    "alarms": [],
}

deploy = deployment_dag(DAG_ID, BRICK_SHOP)

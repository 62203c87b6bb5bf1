"""Blue/green deployment of the lego API (story 5.5): one config, two DAGs.

``blue_green_deploy`` runs the whole release; ``bluegreen_rollback`` is the emergency button.
Out of the box the config points at the embedded sandbox (``make demo`` / ``make airflow``); for
real AWS set ``aws_default`` to your account and ``BLUEGREEN_HEALTH_BASE_URL`` /
``BLUEGREEN_RELEASES_DIR`` (or pass the release as the ``functions`` param when triggering).
"""

from __future__ import annotations

import os
from pathlib import Path

from bluegreen_provider.dag_factory import deployment_dag, rollback_dag

REPO = Path(__file__).resolve().parents[1]
RELEASES = Path(os.environ.get("BLUEGREEN_RELEASES_DIR", REPO / ".sandbox" / "releases"))
HEALTH_BASE = os.environ.get("BLUEGREEN_HEALTH_BASE_URL", "http://127.0.0.1:5056")
FUNCTIONS = ("moc", "gallery", "wishlist", "profile")

LEGO_API = {
    "service": "lego-api",
    "hosted_zone": "lego-mocs.com",
    "record_name": "api.lego-mocs.com",
    "functions": [{"name": f"lego-api-{name}", "zip_file": str(RELEASES / "v2.zip")} for name in FUNCTIONS],
    "slots": {
        slot: {
            "set_identifier": slot,
            "alias": f"production-{slot}",
            "health_url": f"{HEALTH_BASE}/{slot}/health",
            "health_check_fqdn": f"production-{slot}.execute-api.us-east-1.amazonaws.com",
            "api_name": f"lego-api-{slot}",
        }
        for slot in ("blue", "green")
    },
    "alarms": [
        "lego-api-gateway-5xx-errors",
        "lego-api-moc-errors",
        "lego-api-gallery-errors",
    ],
    "migrations": {"conn_id": "lego_db", "folder": str(REPO / "dags" / "migrations" / "lego_api")},
}

deploy = deployment_dag("blue_green_deploy", LEGO_API)
rollback = rollback_dag("bluegreen_rollback", LEGO_API)

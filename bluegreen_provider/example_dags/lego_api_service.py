"""The lego API as a blue/green service: the one place its names, endpoints and alarms are written.

Out of the box it points at the embedded sandbox (``bluegreen demo`` / ``bluegreen airflow``); for
real AWS set ``aws_default`` to your account and ``BLUEGREEN_HEALTH_BASE_URL`` /
``BLUEGREEN_RELEASES_DIR`` (or pass the ``release`` param when triggering, e.g. ``{"label":
"1.4.2", "s3_bucket": "artifacts", "s3_prefix": "lego-api/1.4.2/"}``).
"""

from __future__ import annotations

import os
from pathlib import Path

from bluegreen_provider.locations import sandbox_dirs

FUNCTIONS = ("moc", "gallery", "wishlist", "profile")
MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "lego_api"


def lego_api(*, migrations: Path = MIGRATIONS, releases: Path | None = None) -> dict:
    """The service config, with endpoints read from the environment each time a DAG file is parsed.

    ``releases`` is where the demo release zips are unless ``BLUEGREEN_RELEASES_DIR`` says otherwise
    (default: the releases of the sandbox ``bluegreen sandbox up`` started in the working directory).
    """
    releases = Path(os.environ.get("BLUEGREEN_RELEASES_DIR") or releases or sandbox_dirs()[0].resolve() / "releases")
    health_base = os.environ.get("BLUEGREEN_HEALTH_BASE_URL", "http://127.0.0.1:5056")
    return {
        "service": "lego-api",
        "hosted_zone": "lego-mocs.com",
        "record_name": "api.lego-mocs.com",
        # Functions by name take the release; the sandbox's demo releases are one zip for all four.
        "functions": [{"name": f"lego-api-{name}"} for name in FUNCTIONS],
        "release": {"zip_file": str(releases / "v2.zip")},
        "slots": {
            slot: {
                "set_identifier": slot,
                "alias": f"production-{slot}",
                "health_url": f"{health_base}/{slot}/health",
                "health_check_fqdn": f"production-{slot}.execute-api.us-east-1.amazonaws.com",
                "api_name": f"lego-api-{slot}",
            }
            for slot in ("blue", "green")
        },
        # API Gateway 5XX counts every failed request, also those a handler answers with a 500 itself;
        # Lambda's Errors metric would only see unhandled exceptions.
        "metrics_source": "apigateway",
        "alarms": [
            "lego-api-gateway-5xx-errors",
            "lego-api-moc-errors",
            "lego-api-gallery-errors",
        ],
        "migrations": {"conn_id": "lego_db", "folder": str(migrations)},
    }

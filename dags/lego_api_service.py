"""The lego API as a blue/green service: the provider's example service, written once in
``bluegreen_provider/example_dags/lego_api_service.py`` (names, endpoints, alarms), with this
folder's migrations and this checkout's sandbox releases.

Out of the box it points at the embedded sandbox (``make demo`` / ``make airflow``); for real AWS set
``aws_default`` to your account and ``BLUEGREEN_HEALTH_BASE_URL`` / ``BLUEGREEN_RELEASES_DIR`` (or pass
the ``release`` param when triggering, e.g. ``{"label": "1.4.2", "s3_bucket": "artifacts",
"s3_prefix": "lego-api/1.4.2/"}``).
"""

from __future__ import annotations

from pathlib import Path

from bluegreen_provider.example_dags import lego_api_service as example

HERE = Path(__file__).resolve().parent
FUNCTIONS = example.FUNCTIONS


def lego_api() -> dict:
    """The service config, with endpoints read from the environment each time a DAG file is parsed."""
    return example.lego_api(migrations=HERE / "migrations" / "lego_api", releases=HERE.parent / ".sandbox" / "releases")

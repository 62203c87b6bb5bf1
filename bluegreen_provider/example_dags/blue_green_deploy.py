"""Blue/green deployment of the lego API (story 5.5) as Airflow DAGs: one config, two DAGs.

``blue_green_deploy`` runs the whole release; ``bluegreen_rollback`` is the emergency button.
The service itself (names, endpoints, alarms, migrations) is described in ``lego_api_service.py``.
"""

from __future__ import annotations

from bluegreen_provider.example_dags import lego_api_dags
from bluegreen_provider.example_dags.lego_api_service import lego_api

LEGO_API = lego_api()
deploy, rollback = lego_api_dags(LEGO_API)

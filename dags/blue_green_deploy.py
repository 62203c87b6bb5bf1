"""Blue/green deployment of the lego API (story 5.5) as Airflow DAGs: one config, two DAGs.

``blue_green_deploy`` runs the whole release; ``bluegreen_rollback`` is the emergency button.
The service itself (names, endpoints, alarms, migrations) is described in ``lego_api_service.py``.
"""

from __future__ import annotations

from lego_api_service import lego_api

from bluegreen_provider.dag_factory import deployment_dag, rollback_dag

LEGO_API = lego_api()
deploy = deployment_dag("blue_green_deploy", LEGO_API)
rollback = rollback_dag("bluegreen_rollback", LEGO_API)

"""The provider's example: the lego API deployed blue/green, as Airflow DAG files shipped in the package.

``bluegreen demo`` and (installed from a wheel) ``bluegreen airflow`` point Airflow's DAG folder
here; a source checkout's ``dags/`` holds the same DAGs as thin files importing these. Its
migrations are the checkout's ``dags/migrations`` (a link here, shipped as package data).
"""

from __future__ import annotations

from typing import Any

DEPLOY_DAG_ID = "blue_green_deploy"
ROLLBACK_DAG_ID = "bluegreen_rollback"


def lego_api_dags(config: dict[str, Any]) -> tuple[Any, Any]:
    """The service's two DAGs, ``blue_green_deploy`` and the emergency ``bluegreen_rollback``."""
    from bluegreen_provider.dag_factory import deployment_dag, rollback_dag

    return deployment_dag(DEPLOY_DAG_ID, config), rollback_dag(ROLLBACK_DAG_ID, config)

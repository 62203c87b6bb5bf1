"""The overview's test service as a team's Airflow DAG file defines it: the lego API's config, under a name of its own.

Built by the provider's factories, so the overview reads these DAGs from the metadata DB the way it
reads any deployment DAG. No other test's DAG deploys a service of this name, so its entry on the
overview comes from these DAGs whatever else the shared test DB holds.
"""

from __future__ import annotations

from lego_api_service import lego_api

from bluegreen_provider.dag_factory import deployment_dag, rollback_dag

SERVICE = "lego-oncall"
DEPLOY_DAG_ID = "bluegreen_ui_test_deploy"
ROLLBACK_DAG_ID = "bluegreen_ui_test_rollback"
CONFIG = {**lego_api(), "service": SERVICE}

deploy = deployment_dag(DEPLOY_DAG_ID, CONFIG)
rollback = rollback_dag(ROLLBACK_DAG_ID, CONFIG)

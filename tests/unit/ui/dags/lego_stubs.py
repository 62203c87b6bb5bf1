"""Test-only DAGs tagged as the lego-api service's deployment and rollback DAGs, as the factories tag them.

The overview finds a service's rollback DAG and latest deployment run by these tags; stand-ins keep
the overview's tests independent of what the real deployment DAG's tasks do.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

DEPLOY_DAG_ID = "bluegreen_ui_test_lego_deploy"
ROLLBACK_DAG_ID = "bluegreen_ui_test_lego_rollback"

with DAG(dag_id=DEPLOY_DAG_ID, schedule=None, catchup=False, tags=["bluegreen", "lego-api"]) as deploy:
    EmptyOperator(task_id="plan")

with DAG(dag_id=ROLLBACK_DAG_ID, schedule=None, catchup=False, tags=["bluegreen", "lego-api", "rollback"]) as rollback:
    EmptyOperator(task_id="rollback")

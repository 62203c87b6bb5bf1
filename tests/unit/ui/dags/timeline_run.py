"""Test-only DAG: the deployment's stages as plain tasks returning the summaries the real stages return.

The UI reads only task instances and XComs, so stand-ins with the real task ids and return shapes give
a run whose timeline is known in advance; ``soak_10`` takes a measurable time.
"""

from __future__ import annotations

import time

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, TriggerRule, chain

DAG_ID = "bluegreen_ui_timeline_test"
SOAK_SECONDS = 0.5

SHIFT_10 = {
    "split": {"blue": 90, "green": 10},
    "previous_split": {"blue": 100, "green": 0},
    "candidate_pct": 10,
    "approval": None,
}
SOAK_10 = {
    "requests": 840,
    "errors": 3,
    "rate_pct": 0.36,
    "max_rate_pct": 0.8,
    "alarms_seen": [],
    "duration_s": 300,
    "outcome": "clean",
}
APPROVAL = {"decision": "approve", "by": "Ada Oncall", "at": "2026-11-26T12:30:00+00:00", "via": "response"}
SHIFT_100 = {
    "split": {"blue": 0, "green": 100},
    "previous_split": {"blue": 90, "green": 10},
    "candidate_pct": 100,
    "approval": APPROVAL,
    "retain_until": "2026-11-27T12:31:00+00:00",
}


def _soak() -> dict:
    time.sleep(SOAK_SECONDS)
    return SOAK_10


def _returns(value):
    return lambda: value


with DAG(dag_id=DAG_ID, schedule=None, catchup=False) as dag:
    stages = [
        PythonOperator(task_id="plan", python_callable=_returns({"live": "blue", "candidate": "green"})),
        PythonOperator(task_id="deploy_green", python_callable=_returns(None)),
        PythonOperator(task_id="shift_10", python_callable=_returns(SHIFT_10)),
        PythonOperator(task_id="soak_10", python_callable=_soak),
        PythonOperator(task_id="approval", python_callable=_returns(APPROVAL)),
        PythonOperator(task_id="shift_100", python_callable=_returns(SHIFT_100)),
    ]
    rollback = PythonOperator(task_id="rollback", python_callable=_returns(None), trigger_rule=TriggerRule.ONE_FAILED)
    chain(*stages)
    stages >> rollback

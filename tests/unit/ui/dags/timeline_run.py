"""Test-only DAG: the deployment's stages as plain tasks returning the records the real stages return.

The UI reads only task instances and XComs, so stand-ins with the real task ids and return shapes give
a run whose timeline is known in advance; ``soak_10`` takes a measurable time.
"""

from __future__ import annotations

import time

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, TriggerRule, chain

DAG_ID = "bluegreen_ui_timeline_test"
SOAK_SECONDS = 0.5

PLAN = {
    "live": "blue",
    "candidate": "green",
    "split_before": {"blue": 100, "green": 0},
    "live_versions": {"lego-api-moc": "1"},
    "generation": 1,
    "warnings": [],
    "spec": {
        "service": "lego-api",
        "error_rate_threshold_pct": 5,
        "slots": {"blue": {"set_identifier": "blue"}, "green": {"set_identifier": "green"}},
    },
}
SHIFT_10 = {
    "split": {"blue": 90, "green": 10},
    "previous_split": {"blue": 100, "green": 0},
    "candidate_pct": 10,
    "approval": None,
    "submitted_at": "2026-11-26T12:04:12+00:00",
    "insync_at": "2026-11-26T12:04:16+00:00",
    "change_id": "C0001",
}
SAMPLES = [
    {"t": f"2026-11-26T12:{minute:02d}:16+00:00", "requests": 168, "errors": e, "rate_pct": r, "live_rate_pct": lr}
    for minute, e, r, lr in ((5, 0, 0.0, 0.2), (6, 1, 0.6, 0.3), (7, 1, 0.6, 0.2), (8, 0, 0.0, 0.1), (9, 1, 0.6, 0.2))
]
SOAK_10 = {
    "stage_pct": 10,
    "requests": 840,
    "errors": 3,
    "rate_pct": 0.36,
    "max_rate_pct": 0.8,  # the highest rate seen, not the threshold
    "alarms_seen": [],
    "samples": SAMPLES,
    "watched_from": "2026-11-26T12:04:12+00:00",
    "started_at": "2026-11-26T12:04:16+00:00",
    "ended_at": "2026-11-26T12:09:16+00:00",
    "duration_s": 300,
    "live": {"slot": "blue", "requests": 7560, "errors": 15, "rate_pct": 0.2},
    "outcome": "clean",
}
APPROVAL = {"decision": "approve", "by": "Ada Oncall", "at": "2026-11-26T12:30:00+00:00", "via": "response"}
SHIFT_100 = {
    "split": {"blue": 0, "green": 100},
    "previous_split": {"blue": 90, "green": 10},
    "candidate_pct": 100,
    "approval": APPROVAL,
    "submitted_at": "2026-11-26T12:31:00+00:00",
    "insync_at": "2026-11-26T12:31:03+00:00",
    "retain_until": "2026-11-27T12:31:00+00:00",
}


def _soak() -> dict:
    time.sleep(SOAK_SECONDS)
    return SOAK_10


def _returns(value):
    return lambda: value


with DAG(dag_id=DAG_ID, schedule=None, catchup=False) as dag:
    stages = [
        PythonOperator(task_id="plan", python_callable=_returns(PLAN)),
        PythonOperator(task_id="deploy_green", python_callable=_returns(None)),
        PythonOperator(task_id="shift_10", python_callable=_returns(SHIFT_10)),
        PythonOperator(task_id="soak_10", python_callable=_soak),
        PythonOperator(task_id="approval", python_callable=_returns(APPROVAL)),
        PythonOperator(task_id="shift_100", python_callable=_returns(SHIFT_100)),
    ]
    rollback = PythonOperator(task_id="rollback", python_callable=_returns(None), trigger_rule=TriggerRule.ONE_FAILED)
    chain(*stages)
    stages >> rollback

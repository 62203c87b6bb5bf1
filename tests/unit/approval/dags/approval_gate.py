"""Test-only DAG: the deployment's tail around the approval gate, fed by ``dag_run.conf``.

``conf["plan"]`` is the plan for a moto world and ``conf["soak_10"]``/``conf["soak_50"]`` soak
summaries, so one static file serves every case (timeouts, policies and the approval mode come from
the plan's spec, as in production). ``shift_100`` reads the approval's decision through the real
promotion step's ``_approval`` and returns what it accepted.
"""

from __future__ import annotations

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, TriggerRule

from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.operators.traffic import ShiftWeightOperator
from bluegreen_provider.plan import Plan
from bluegreen_provider.sensors.approval import ApprovalSensor, HoldOperator

DAG_ID = "bluegreen_approval_gate_test"


def _plan(dag_run):
    return dag_run.conf["plan"]


def _soak(task_id: str, dag_run):
    return dag_run.conf.get(task_id)


def _set_green(pct: int, ti) -> None:
    plan = ti.xcom_pull(task_ids="plan")
    Route53Hook(aws_conn_id=None).set_split(
        plan["zone_id"],
        plan["spec"]["record_name"],
        plan["spec"]["record_type"],
        {"blue": 100 - pct, "green": pct},
        comment=f"approval gate test: green {pct}",
    )


def _promote(ti, **context) -> dict:
    """The promotion's own reading of the decision (it skips on a refusal), then green to 100 %."""
    promotion = ShiftWeightOperator(task_id="shift_100", candidate_pct=100, approval_task_id="approval")
    accepted = promotion._approval({"ti": ti, **context}, Plan.from_dict(ti.xcom_pull(task_ids="plan")))
    _set_green(100, ti)
    return {"approval": accepted}


with DAG(dag_id=DAG_ID, schedule=None, catchup=False) as dag:
    plan = PythonOperator(task_id="plan", python_callable=_plan)
    soak_10 = PythonOperator(task_id="soak_10", python_callable=_soak, op_kwargs={"task_id": "soak_10"})
    soak_50 = PythonOperator(task_id="soak_50", python_callable=_soak, op_kwargs={"task_id": "soak_50"})
    approval = ApprovalSensor(task_id="approval", aws_conn_id=None)
    shift_100 = PythonOperator(task_id="shift_100", python_callable=_promote)
    # NONE_FAILED would run after a skipped promotion; a refusal must skip it directly.
    teardown_blue = PythonOperator(
        task_id="teardown_blue", python_callable=lambda: None, trigger_rule=TriggerRule.NONE_FAILED
    )
    hold = HoldOperator(task_id="hold", aws_conn_id=None)
    rollback = PythonOperator(
        task_id="rollback",
        python_callable=_set_green,
        op_kwargs={"pct": 0},
        trigger_rule=TriggerRule.ONE_FAILED,
    )
    plan >> soak_10 >> soak_50 >> approval >> shift_100 >> teardown_blue
    approval >> hold
    [approval, shift_100, teardown_blue] >> rollback

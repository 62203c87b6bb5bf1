"""approval_mode "auto" in real DAG runs: clean evidence promotes with nobody asked, marginal evidence waits.

The soak summaries are the soak tasks' XComs (``dag_run.conf``), the decision is read back from
Airflow's XCom table and the request from the HITL table and the public API, traffic from moto.
"""

from __future__ import annotations

import threading
import time

import pytest

from .evidence import MARGINAL, clean_soaks, marginal_soaks
from .test_approval_dag import run_gate, task_states, xcom

RULE_BY = "auto-approved by rule: every soak clean with >= 20 requests on both slots; candidate no worse than live"


class NobodyAsked(threading.Thread):
    """Fails the approval (instead of hanging the run) if it ever waits for a person."""

    def __init__(self, api, dag_id: str):
        super().__init__(daemon=True)
        self.api, self.dag_id = api, dag_id
        self.stop = threading.Event()
        self.asked_in: str | None = None

    def run(self) -> None:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        while not self.stop.is_set():
            with create_session() as session:
                ti = session.scalars(
                    select(TaskInstance).where(
                        TaskInstance.dag_id == self.dag_id,
                        TaskInstance.task_id == "approval",
                        TaskInstance.state == "awaiting_input",
                    )
                ).first()
                if ti is not None:
                    self.asked_in = ti.run_id
                    break
            self.stop.wait(0.2)
        if self.asked_in:
            self.api.patch(
                f"/api/v2/dags/{self.dag_id}/dagRuns/{self.asked_in}/taskInstances/approval",
                json={"new_state": "failed"},
            )


def hitl_details(dr) -> list:
    """The Required Action requests stored for this run's approval task."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(
                select(HITLDetail.subject)
                .join(TaskInstance, HITLDetail.ti_id == TaskInstance.id)
                .where(TaskInstance.run_id == dr.run_id, TaskInstance.task_id == "approval")
            )
        )


def test_auto_mode_promotes_a_clean_release_without_asking(world, api, gate_dag):
    watchdog = NobodyAsked(api, gate_dag.dag_id)
    watchdog.start()
    started = time.monotonic()
    try:
        dr = gate_dag.test(run_conf={"plan": world.plan(approval_mode="auto"), **clean_soaks()})
    finally:
        watchdog.stop.set()
        watchdog.join(timeout=5)
    print(f"auto-approved run: {time.monotonic() - started:.1f}s")

    assert watchdog.asked_in is None, "the approval waited for a person"
    states = task_states(dr)
    assert states["approval"] == "success"
    assert states["shift_100"] == "success"
    assert states["teardown_blue"] == "success"
    assert states["hold"] == "skipped"
    assert states["rollback"] == "skipped"
    assert dr.state == "success"
    record = xcom(dr, "approval")
    assert (record["decision"], record["via"], record["by"], record["user"]) == ("approve", "rule", RULE_BY, None)
    assert xcom(dr, "shift_100")["approval"] == record  # accepted by the promotion's own check
    assert xcom(dr, "approval", "request")["not_auto_approved"] == []
    assert hitl_details(dr) == []  # no Required Action was ever opened
    assert world.split() == {"blue": 0, "green": 100}


@pytest.mark.parametrize("case", sorted(MARGINAL))
def test_auto_mode_waits_for_a_person_when_marginal(world, api, gate_dag, case):
    soaks, reason = marginal_soaks(case)

    dr, states, responder = run_gate(api, gate_dag, world, "Approve", soaks=soaks, approval_mode="auto")

    assert f"Approval mode `auto`, but not auto-approved: {reason}. A person decides." in responder.request["body"]
    assert responder.status == 200
    assert hitl_details(dr) == ["Promote lego-api green to 100 %?"]
    record = xcom(dr, "approval")
    assert (record["decision"], record["via"]) == ("approve", "response")
    assert record["by"] == responder.answer["responded_by"]["name"]
    assert xcom(dr, "shift_100")["approval"] == record
    assert xcom(dr, "approval", "request")["not_auto_approved"] == [reason]
    assert (states["approval"], states["shift_100"], states["hold"]) == ("success", "success", "skipped")
    assert world.split() == {"blue": 0, "green": 100}


def test_required_mode_still_asks_for_clean_evidence(world, api, gate_dag):
    dr, states, responder = run_gate(api, gate_dag, world, "Reject", soaks=clean_soaks())

    assert "auto-approved" not in responder.request["body"]
    assert "| Requests | 400 | 3600 |" in responder.request["body"]
    assert xcom(dr, "approval")["via"] == "response"
    assert (states["approval"], states["shift_100"], states["hold"]) == ("success", "skipped", "failed")
    assert world.split() == {"blue": 50, "green": 50}

"""The approval gate in real DAG runs: dag.test() in the main thread, a person answering over REST.

A daemon thread waits for ``approval`` to reach ``awaiting_input`` in the metadata DB, then answers
through the public API (``TestClient`` of the api-server app), marks the task, or lets the deadline
pass and runs the scheduler's own timeout sweep (``dag.test()`` never runs it). AWS is moto,
in-process, so the tasks' Route53/Lambda/CloudWatch calls and the weights read back share one world.
"""

from __future__ import annotations

import threading
import time

import pytest

from bluegreen_provider.sensors.approval import HoldOperator

SOAK_50 = {"requests": 1200, "errors": 6, "rate_pct": 0.5, "max_rate_pct": 1.25, "alarms_seen": [], "outcome": "clean"}
ANSWER_WITHIN_SECONDS = 60


class Responder(threading.Thread):
    """Waits for the approval request, then acts as a person (or the clock) would."""

    def __init__(self, api, dag_id: str, action: str):
        super().__init__(daemon=True)
        self.api, self.dag_id, self.action = api, dag_id, action
        self.request: dict = {}
        self.status: int | None = None
        self.answer: dict = {}
        self.error: BaseException | None = None

    def _awaiting(self):
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        deadline = time.monotonic() + ANSWER_WITHIN_SECONDS
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = session.scalars(
                    select(TaskInstance).where(
                        TaskInstance.dag_id == self.dag_id,
                        TaskInstance.task_id == "approval",
                        TaskInstance.state == "awaiting_input",
                    )
                ).first()
                if ti is not None:
                    return ti.run_id, ti.trigger_timeout
            time.sleep(0.2)
        raise TimeoutError(f"approval never reached awaiting_input within {ANSWER_WITHIN_SECONDS}s")

    def run(self) -> None:
        base = None
        try:
            run_id, deadline = self._awaiting()
            base = f"/api/v2/dags/{self.dag_id}/dagRuns/{run_id}/taskInstances/approval"
            self.request = self.api.get(f"{base}/-1/hitlDetails").json()
            if self.action in ("Approve", "Reject"):
                answer = {"chosen_options": [self.action], "params_input": {}}
                reply = self.api.patch(f"{base}/-1/hitlDetails", json=answer)
                self.status, self.answer = reply.status_code, reply.json()
            elif self.action == "mark_success":
                self.status = self.api.patch(base, json={"new_state": "success"}).status_code
            elif self.action == "timeout":
                self._expire(deadline)
        except BaseException as err:  # reported by the test; the run must not wait forever
            self.error = err
            if base:
                self.api.patch(base, json={"new_state": "failed"})

    @staticmethod
    def _expire(deadline) -> None:
        """Let the response deadline pass, then run the scheduler's awaiting_input timeout sweep."""
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.utils import timezone

        while timezone.utcnow() <= deadline:
            time.sleep(0.1)
        SchedulerJobRunner(job=Job(), executors=[]).check_awaiting_input_timeouts()


def run_gate(api, dag, world, action: str, soaks: dict | None = None, **spec_overrides):
    """Run the DAG to its end while the responder acts; return (dag run, task states, responder).

    ``soaks`` are the soak tasks' summaries by task id (default: only ``soak_50``, an older summary).
    """
    responder = Responder(api, dag.dag_id, action)
    responder.start()
    started = time.monotonic()
    dr = dag.test(run_conf={"plan": world.plan(**spec_overrides), **(soaks or {"soak_50": SOAK_50})})
    responder.join(timeout=5)
    assert responder.error is None, responder.error
    print(f"{action}: {time.monotonic() - started:.1f}s")
    return dr, task_states(dr), responder


def task_states(dr) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dr.dag_id, TaskInstance.run_id == dr.run_id)
        )
        return {ti.task_id: ti.state for ti in tis}


def xcom(dr, task_id: str, key: str = "return_value"):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dr.run_id, dag_ids=dr.dag_id, task_ids=task_id, key=key)
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


@pytest.fixture
def held(monkeypatch) -> dict[str, str]:
    """The hold's failure message per run id, exactly as raised."""
    messages: dict[str, str] = {}
    original = HoldOperator._held_message

    def keep(self, context, record):
        messages[context["dag_run"].run_id] = message = original(self, context, record)
        return message

    monkeypatch.setattr(HoldOperator, "_held_message", keep)
    return messages


def test_approve_promotes_and_skips_the_hold(world, api, gate_dag):
    dr, states, responder = run_gate(api, gate_dag, world, "Approve")

    assert responder.status == 200
    assert responder.request["subject"] == "Promote lego-api green to 100 %?"
    assert "blue 50 / green 50" in responder.request["body"]
    assert "#### `soak_50`: clean\n" in responder.request["body"]
    assert "| Requests | 1200 | — |" in responder.request["body"]
    assert states["approval"] == "success"
    assert states["shift_100"] == "success"
    assert states["teardown_blue"] == "success"
    assert states["hold"] == "skipped"
    assert states["rollback"] == "skipped"
    assert dr.state == "success"
    record = xcom(dr, "approval")
    assert (record["decision"], record["via"]) == ("approve", "response")
    assert record["by"] == responder.answer["responded_by"]["name"]
    assert world.split() == {"blue": 0, "green": 100}


def test_reject_holds_traffic_where_it_is_and_fails_the_run(world, api, gate_dag, held):
    dr, states, responder = run_gate(api, gate_dag, world, "Reject")

    assert responder.status == 200
    assert states["approval"] == "success"
    assert states["shift_100"] == "skipped"
    assert states["teardown_blue"] == "skipped"
    assert states["rollback"] == "skipped"
    assert states["hold"] == "failed"
    assert dr.state == "failed"
    record = xcom(dr, "approval")
    assert (record["decision"], record["via"]) == ("reject", "response")
    assert held[dr.run_id].startswith(f"HELD at blue 50 / green 50: rejected by {record['by']} at ")
    assert "run `bluegreen rollback --service lego-api`" in held[dr.run_id]
    assert world.split() == {"blue": 50, "green": 50}


def test_mark_success_promotes_without_a_decision_record(world, api, gate_dag):
    dr, states, responder = run_gate(api, gate_dag, world, "mark_success")

    assert responder.status == 200
    assert states["approval"] == "success"
    assert states["shift_100"] == "success"
    assert states["hold"] == "skipped"
    assert xcom(dr, "approval") is None
    assert world.split() == {"blue": 0, "green": 100}
    # The trap the missing record exposes: the request still accepts a "Reject" after promotion.
    late = api.patch(
        f"/api/v2/dags/{dr.dag_id}/dagRuns/{dr.run_id}/taskInstances/approval/-1/hitlDetails",
        json={"chosen_options": ["Reject"], "params_input": {}},
    )
    assert late.status_code == 200
    assert xcom(dr, "approval") is None


def test_timeout_with_hold_policy_holds(world, api, gate_dag, held):
    dr, states, _ = run_gate(api, gate_dag, world, "timeout", approval_timeout_seconds=1)

    assert states["approval"] == "success"
    assert states["shift_100"] == "skipped"
    assert states["rollback"] == "skipped"
    assert states["hold"] == "failed"
    assert dr.state == "failed"
    record = xcom(dr, "approval")
    assert (record["decision"], record["via"], record["by"]) == ("reject", "timeout", None)
    assert held[dr.run_id].startswith("HELD at blue 50 / green 50: approval timed out after 1s.")
    assert world.split() == {"blue": 50, "green": 50}


def test_timeout_with_rollback_policy_runs_the_rollback(world, api, gate_dag):
    dr, states, _ = run_gate(
        api, gate_dag, world, "timeout", approval_timeout_seconds=1, approval_timeout_policy="rollback"
    )

    assert states["approval"] == "failed"
    assert states["shift_100"] == "upstream_failed"
    assert states["hold"] == "skipped"
    assert states["rollback"] == "success"
    assert dr.state == "success"  # the rollback leaf succeeded; failing the run is the rollback's job
    assert xcom(dr, "approval")["decision"] == "rollback"
    assert world.split() == {"blue": 100, "green": 0}

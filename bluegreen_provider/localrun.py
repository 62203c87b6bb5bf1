"""Run a deployment DAG on this machine with ``dag.test()`` and answer its approval as a person would.

Used by ``make demo`` and the end-to-end tests. The approval is answered through Airflow's public
REST API (the same call the UI's Approve/Reject buttons make), or by marking the task success as in
the UI; nothing in the DAG knows it is being driven.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

APPROVAL_TASK = "approval"
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _api():
    """Airflow's REST API in-process (building the app takes seconds: once per process)."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    return TestClient(create_app())


def _import_airflow_models() -> None:
    """Import in the calling (main) thread what the responder uses, before it starts.

    Two threads importing Airflow's ORM modules in different orders deadlock on the import locks.
    """
    import airflow.api_fastapi.app
    import airflow.models.dagrun
    import airflow.models.taskinstance
    import airflow.models.xcom  # noqa: F401
    import fastapi.testclient  # noqa: F401


def awaiting_approval(dag_id: str, task_id: str = APPROVAL_TASK) -> tuple[str, datetime | None] | None:
    """(run_id, response deadline) of a task parked in ``awaiting_input``, if any."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.task_id == task_id,
                TaskInstance.state == "awaiting_input",
            )
        ).first()
        return None if ti is None else (ti.run_id, ti.trigger_timeout)


@dataclass(eq=False)
class ApprovalResponder(threading.Thread):
    """Waits (bounded) for the approval request, then Approves, Rejects or marks it success."""

    dag_id: str
    action: str = "Approve"
    wait_seconds: float = 300.0
    task_id: str = APPROVAL_TASK
    before_answer: Callable[[str], None] | None = None
    request: dict[str, Any] = field(default_factory=dict)
    status_code: int | None = None
    answered_at: float | None = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, daemon=True, name="approval-responder")
        self._cancelled = threading.Event()
        if self.action not in ("Approve", "Reject", "mark_success"):
            raise ValueError(f"action must be Approve, Reject or mark_success, got {self.action!r}")
        _import_airflow_models()

    def run(self) -> None:
        try:
            deadline = time.monotonic() + self.wait_seconds
            found = None
            while found is None:
                if time.monotonic() > deadline or self._cancelled.is_set():
                    return  # the run ended without asking (a failed stage, or a rollback)
                found = awaiting_approval(self.dag_id, self.task_id)
                if found is None:
                    self._cancelled.wait(0.2)
            run_id, _ = found
            if self.before_answer:
                self.before_answer(run_id)
            api = _api()
            base = f"/api/v2/dags/{self.dag_id}/dagRuns/{run_id}/taskInstances/{self.task_id}"
            self.request = api.get(f"{base}/-1/hitlDetails").json()
            if self.action == "mark_success":
                reply = api.patch(base, json={"new_state": "success"})
            else:
                reply = api.patch(f"{base}/-1/hitlDetails", json={"chosen_options": [self.action], "params_input": {}})
            self.status_code = reply.status_code
            self.answered_at = time.monotonic()
        except BaseException as err:  # surfaced by the caller; the run must never wait forever
            log.exception("approval responder failed")
            self.error = err

    def cancel(self) -> None:
        """Stop waiting: the run this responder was meant for has ended."""
        self._cancelled.set()
        self.join(timeout=5)


def task_rows(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task of a run: state, start, end and duration, in start order."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        rows = [
            {
                "task_id": ti.task_id,
                "state": str(ti.state) if ti.state else None,
                "start": ti.start_date,
                "end": ti.end_date,
                "duration_s": (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else None,
            }
            for ti in tis
        ]
    return sorted(rows, key=lambda r: (r["start"] is None, r["start"] or datetime.max.replace(tzinfo=None)))


def task_states(dag_id: str, run_id: str) -> dict[str, str | None]:
    return {row["task_id"]: row["state"] for row in task_rows(dag_id, run_id)}


def xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=task_id, key=key)).first()
        return None if row is None else XComModel.deserialize_value(row)


def latest_run_id(dag_id: str) -> str | None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dr = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)).first()
        return None if dr is None else dr.run_id

"""Run one deployment DAG to its end with ``dag.test()`` in a process of its own, beside a test's run.

A test runs its own deployment in its process; a second, concurrent one cannot share it (one task
runs at a time in a process), so it runs here, against the same sandbox (the connection in the
environment) and the same Airflow metadata DB. It writes what it saw as JSON to ``--result``: the
run's id and state, its task states, and the message its plan raised if it refused.

    python tests/chaos/other_run.py --dag-file F --dag-name N --conf JSON --result OUT
        [--approve] [--after-approval-of DAG_ID]

``--approve`` answers the run's approval (Approve); with ``--after-approval-of`` only once that
other DAG's latest run has reached its own approval, so both stand at their gates together.
"""

from __future__ import annotations

import argparse
import json
import runpy
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REACHED = ("awaiting_input", "success", "failed", "skipped", "upstream_failed")


def wait_for_approval_of(dag_id: str, timeout: float = 240, while_running: subprocess.Popen | None = None) -> str:
    """Until ``dag_id``'s latest run has reached its approval task (parked or past it); its state.

    ``while_running``: the process running that DAG; its end stops the wait at once.
    """
    from bluegreen_provider.localrun import latest_run_id, task_states

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if while_running is not None and while_running.poll() is not None:
            raise RuntimeError(f"the run of {dag_id} ended (exit {while_running.returncode}) before its approval")
        run_id = latest_run_id(dag_id)
        state = task_states(dag_id, run_id).get("approval") if run_id else None
        if state in REACHED:
            return state
        time.sleep(0.2)  # polling the metadata DB for the other run's state; nothing here races it
    raise TimeoutError(f"{dag_id} did not reach its approval within {timeout:g} s")


def record_refusals(errors: dict[str, str]) -> None:
    """Keep the message the plan raises: the refusal a test asserts on."""
    from bluegreen_provider.operators.plan import PlanDeploymentOperator

    execute = PlanDeploymentOperator.execute

    def execute_and_record(self: PlanDeploymentOperator, context: Any) -> Any:
        try:
            return execute(self, context)
        except Exception as err:
            errors[self.task_id] = str(err)
            raise

    PlanDeploymentOperator.execute = execute_and_record  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dag-file", type=Path, required=True)
    parser.add_argument("--dag-name", required=True)
    parser.add_argument("--conf", required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--approve", action="store_true")
    parser.add_argument("--after-approval-of")
    args = parser.parse_args(argv)
    for path in (REPO, REPO / "dags"):
        sys.path.insert(0, str(path))

    from bluegreen_provider.localrun import ApprovalResponder, task_states

    result: dict[str, Any] = {"errors": {}}
    record_refusals(result["errors"])
    responder = None
    try:
        dag = runpy.run_path(str(args.dag_file))[args.dag_name]
        if args.approve:
            other = args.after_approval_of
            responder = ApprovalResponder(
                dag.dag_id,
                action="Approve",
                wait_seconds=240,
                before_answer=(lambda run_id: wait_for_approval_of(other)) if other else None,
            )
            responder.start()
        dr = dag.test(run_conf=json.loads(args.conf))
        result.update(
            dag_id=dag.dag_id,
            run_id=dr.run_id,
            state=str(getattr(dr.state, "value", dr.state)),
            states=task_states(dag.dag_id, dr.run_id),
        )
    except BaseException:
        result["crash"] = traceback.format_exc()
    finally:
        if responder is not None:
            responder.cancel()
            result["responder_error"] = repr(responder.error) if responder.error else None
    args.result.write_text(json.dumps(result, default=str))
    return 0 if "crash" not in result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

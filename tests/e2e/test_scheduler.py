"""The deployment DAG under a real, distributed Airflow: scheduler, triggerer, dag-processor, api-server
and a Celery worker.

No ``dag.test()``: the CeleryExecutor sends the tasks over this machine's Redis to a Celery worker (as
``docker-compose.yaml`` runs it, on one machine), the triggerer runs the soaks and the teardown's wait,
failure callbacks run in the task processes, and everything a person does goes through the public
REST API (trigger, clear, approve). The process-kill cases of ``tests/chaos`` run the same world on the
LocalExecutor. The story it proves:

1. a bad release is caught at the first breach of the 10 % soak, rolled back, and the run fails;
2. someone fixes the artifact and clears ``deploy_green`` with its downstream tasks; the same run
   resumes (its ``deploy_green`` process is killed inside an alias update that landed, and the
   stage's retry picks it up), is approved, promotes the candidate to 100 % and retires the old slot
   after retention;
3. a person marks a run failed over REST in the middle of its 10 % soak: no stage fails by itself,
   yet the ``rollback`` teardown runs and puts 100 % back on the live slot.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from bluegreen_provider.sandbox.faults import FaultPlan
from bluegreen_provider.state import owner_of
from tests.e2e.airflow_world import (
    DAG_ID,
    FUNCTIONS,
    World,
    airflow_world,
    dag_ready,
    live_and_candidate,
    no_run_active,
    parking_exit_processed,
    print_diagnosis,
    wait_for,
    wait_run,
)
from tests.e2e.conftest import FAST, deployment_state

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(900)]

SOAK_10_SECONDS = 30  # several times what a breach takes to show: only a breach can end it early
RETENTION_SECONDS = 20  # long enough that teardown_blue must wait for it on the triggerer
LONG_SOAK_SECONDS = 600  # a soak that is still running when a person marks the run failed
MARK_FAILED_RESTORE_SECONDS = FAST["poll_interval_seconds"] + 15  # mark failed -> live slot has 100 % again


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    # A fault proxy that injects nothing, to hold one AWS call still while its process is killed.
    with airflow_world(
        tmp_path_factory.mktemp("scheduler"),
        sandbox_settings={"faults": FaultPlan(share=0.0)},
        executor="CeleryExecutor",
    ) as started:
        yield started


# -- the test --------------------------------------------------------------------------------------
def test_bad_release_rolls_back_then_clearing_deploy_green_resumes_to_promotion(world: World) -> None:
    sandbox, airflow = world.sandbox, world.airflow
    laps: dict[str, float] = {}
    started = last = time.monotonic()

    def lap(name: str) -> None:
        nonlocal last
        laps[name] = time.monotonic() - last
        last = time.monotonic()

    try:
        dag_ready(world)
        lap("dag parsed")
        before = sandbox.weights()
        live, candidate = live_and_candidate(before)

        # 1. The bad release: caught at the first breach of the 10 % soak, rolled back, run failed.
        world.artifact.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sandbox.state_dir / "releases" / "bad.zip", world.artifact)
        run_id = f"scheduler_e2e_{uuid.uuid4().hex[:6]}"
        steps = [{**s, "soak_seconds": SOAK_10_SECONDS} if s["weight"] == 10 else s for s in FAST["steps"]]
        conf = {
            **FAST,
            "steps": steps,
            "retention_seconds": RETENTION_SECONDS,
            "functions": [{"name": f, "zip_file": str(world.artifact)} for f in FUNCTIONS],
        }
        airflow.api(
            "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        )
        assert wait_run(world, run_id, timeout=300) == "failed", world.states(run_id)
        lap("bad release: trigger -> run failed")

        tis = world.task_instances(run_id)
        states = {task: ti["state"] for task, ti in tis.items()}
        assert states["health_check"] == "success" and states["shift_10"] == "success", states
        assert states["soak_10"] == "failed", states
        assert states["shift_50"] == states["approval"] == "upstream_failed", states
        assert states["rollback"] == "success", states  # the teardown confirmed the restore; the run still failed
        assert sandbox.weights() == before == {live: 100, candidate: 0}
        state = deployment_state(sandbox)
        assert (state.owner, state.phase, state.live) == (owner_of(DAG_ID, run_id), "rolled_back", live), state
        assert state.split == {live: 100, candidate: 0} and state.reason.startswith("soak_10 failed"), state
        # The soak ran on the real triggerer (its own log file) and it was the first breach, not the end:
        trigger_logs = world.logs(run_id, "soak_10", "attempt=1.log.trigger.*.log")
        assert trigger_logs and "breach" in "".join(trigger_logs.values()), world.logs(run_id, "soak_10")
        assert tis["soak_10"]["duration"] < SOAK_10_SECONDS, tis["soak_10"]
        soak_log = world.logs(run_id, "soak_10", "attempt=1.log")["attempt=1.log"]
        assert "soak at 10 % breached (" in soak_log  # error rate or alarm, whichever the trigger saw first
        # ... and its on_failure_callback rolled back in the task process, before the rollback task.
        assert "AUTOMATIC ROLLBACK after soak_10 failed" in soak_log, soak_log[-3000:]
        assert world.xcom(run_id, "rollback")["action"] == "nothing"
        assert "Nothing to restore: traffic already on" in world.logs(run_id, "rollback")["attempt=1.log"]

        # 2. Fix the artifact, clear deploy_green and everything downstream: the same run resumes.
        # Its process is killed inside an alias update that landed; the stage's retry picks it up.
        shutil.copyfile(sandbox.state_dir / "releases" / "v2.zip", world.artifact)
        held = sandbox.hold("lambda", "UpdateAlias", after_apply=True)
        tries_before = world.task_instances(run_id)["deploy_green"]["try_number"]
        cleared = airflow.api(
            "POST",
            f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
            {
                "dag_run_id": run_id,
                "task_ids": ["deploy_green"],
                "include_downstream": True,
                "only_failed": False,
                "dry_run": False,
                "reset_dag_runs": True,
            },
        )
        assert {ti["task_id"] for ti in cleared["task_instances"]} >= {"deploy_green", "soak_10", "rollback"}
        assert wait_for("deploy_green to reach the held alias update", lambda: held.wait_reached(0.5), 120, 0.2)
        pid = wait_for("deploy_green's process", lambda: world.task_pid(run_id, "deploy_green"), 30, 0.2)
        os.kill(pid, signal.SIGKILL)
        held.release()
        lap("fixed release: clear -> deploy_green killed mid-call")
        approval = f"{world.run_path(run_id)}/taskInstances/approval"
        wait_run(world, run_id, timeout=300, until=lambda: world.states(run_id)["approval"] == "awaiting_input")
        wait_for(
            "the parked approval's worker exit to be processed",
            lambda: parking_exit_processed(world, run_id, "approval"),
            60,
        )
        lap("fixed release: clear -> approval awaiting input")
        airflow.api("PATCH", f"{approval}/-1/hitlDetails", {"chosen_options": ["Approve"], "params_input": {}})
        assert wait_run(world, run_id, timeout=240) == "success", world.states(run_id)
        lap("approve -> run success (teardown after retention)")

        states = world.states(run_id)
        assert {states[t] for t in ("deploy_green", "soak_10", "soak_50", "approval", "shift_100")} == {"success"}
        tries = world.task_instances(run_id)["deploy_green"]["try_number"]
        assert tries == tries_before + 2, (tries_before, tries)  # the clear, then the retry after the kill
        assert states["teardown_blue"] == "success" and states["rollback"] == "success", states
        rollback = world.xcom(run_id, "rollback")
        assert rollback["action"] == "nothing" and "promoted" in rollback["reason"], rollback
        assert sandbox.weights() == {live: 0, candidate: 100}
        state = deployment_state(sandbox)
        assert (state.owner, state.phase, state.live) == (owner_of(DAG_ID, run_id), "retired", candidate), state
        assert state.split == {live: 0, candidate: 100} and state.retained is None, state
        lam = sandbox.clients()("lambda")
        for fn in FUNCTIONS:
            version = lam.get_alias(FunctionName=fn, Name=f"production-{candidate}")["FunctionVersion"]
            code = lam.get_function(FunctionName=fn, Qualifier=version)["Configuration"]["CodeSha256"]
            assert code == sandbox.release_sha256("v2"), fn
        assert world.xcom(run_id, "approval")["decision"] == "approve"
        assert world.xcom(run_id, "teardown_blue")["action"] == "retired"
        assert world.logs(run_id, "teardown_blue", "attempt=*.log.trigger.*.log"), "teardown did not defer"
    except BaseException:
        print_diagnosis(airflow.home)
        raise
    finally:
        laps["total"] = time.monotonic() - started
        print("\nphase wall-clock times:\n" + "\n".join(f"  {name:<52} {s:6.1f} s" for name, s in laps.items()))


def test_marking_a_run_failed_mid_soak_rolls_back_through_the_teardown(world: World) -> None:
    sandbox, airflow = world.sandbox, world.airflow
    timings: dict[str, float] = {}
    try:
        dag_ready(world)
        no_run_active(world)
        before = sandbox.weights()
        live, candidate = live_and_candidate(before)
        world.artifact.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sandbox.state_dir / "releases" / "v2.zip", world.artifact)
        run_id = f"scheduler_mark_failed_{uuid.uuid4().hex[:6]}"
        conf = {
            **FAST,
            "steps": [{**s, "soak_seconds": LONG_SOAK_SECONDS} if s["weight"] < 100 else s for s in FAST["steps"]],
            "functions": [{"name": f, "zip_file": str(world.artifact)} for f in FUNCTIONS],
        }
        airflow.api(
            "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        )
        triggered = time.monotonic()

        def soaking() -> bool:
            deferred = world.states(run_id).get("soak_10") == "deferred"  # soaking on the triggerer
            return deferred and sandbox.weights() == {live: 90, candidate: 10}

        wait_run(world, run_id, timeout=240, until=soaking)
        timings["trigger -> soak_10 deferred at 90/10"] = time.monotonic() - triggered
        assert deployment_state(sandbox).phase == "shifting"

        marked = time.monotonic()
        airflow.api("PATCH", world.run_path(run_id), {"state": "failed"})
        restored = wait_for(
            f"Route53 to read {live} 100 / {candidate} 0 after the run was marked failed",
            lambda: sandbox.weights() == {live: 100, candidate: 0},
            timeout=MARK_FAILED_RESTORE_SECONDS,
            interval=0.2,
        )
        timings["mark failed -> Route53 reads 100/0 on the live slot"] = time.monotonic() - marked
        assert restored
        rolled_back = wait_for(
            "the rollback task to succeed",
            lambda: world.states(run_id).get("rollback") == "success" or None,
            timeout=60,
            interval=0.5,
        )
        timings["mark failed -> rollback task success"] = time.monotonic() - marked
        assert rolled_back
        # Airflow 3.3 leaves a run marked failed to the scheduler while a teardown is pending
        # (apache/airflow#45530), and the scheduler judges it by its effective leaves, teardown_blue and
        # hold, which the mark skipped: the run ends "success" although a person failed it and it was
        # rolled back. What happened is in the rollback task and the deployment state, asserted below.
        assert wait_run(world, run_id, timeout=60) == "success", world.states(run_id)
        timings["mark failed -> run ended"] = time.monotonic() - marked

        states = world.states(run_id)
        assert states["soak_10"] == "failed", states  # marked failed while it soaked on the triggerer
        assert states["rollback"] == "success", states
        assert {states[t] for t in ("shift_50", "soak_50", "approval", "shift_100", "teardown_blue")} == {"skipped"}, (
            states
        )
        assert sandbox.weights() == {live: 100, candidate: 0}
        state = deployment_state(sandbox)
        assert (state.owner, state.phase, state.live) == (owner_of(DAG_ID, run_id), "rolled_back", live), state
        assert state.split == {live: 100, candidate: 0}, state
        rollback = world.xcom(run_id, "rollback")
        print(f"\nrollback task after mark-failed: {rollback}")
        assert rollback["split_now"] == {live: 100, candidate: 0}, rollback
        if rollback["action"] == "rolled_back":  # Airflow ran no failure callback: the teardown did the work
            assert rollback["split_before"] == {live: 90, candidate: 10} and rollback["phase"] == "rolled_back"
            assert state.reason.startswith("rollback task after soak_10"), state.reason
        else:  # a failure callback restored it first; the teardown confirmed it
            assert "already" in rollback["reason"], rollback
    except BaseException:
        print_diagnosis(airflow.home)
        raise
    finally:
        print("\nmark-failed timings:\n" + "\n".join(f"  {name:<52} {s:6.1f} s" for name, s in timings.items()))

"""Process kills: ``kill -9`` of a task's process, the scheduler or the triggerer at each stage of a
real run (scheduler, triggerer, dag-processor, api-server, LocalExecutor, Postgres metadata DB).

Each case deploys a good release and kills one process at one stage, at a moment the test holds
still, so the kill lands where it says and never by luck of timing:

- an AWS call of the stage is held at the sandbox's fault proxy (:class:`Gate`), after moto applied
  it: the killed process never learns that its change landed;
- a migration waits for an advisory lock the test holds;
- a deferred stage's trigger is held in its AWS poll, or (the approval) parked awaiting input.

The killed component is started again (a task's process is the worker's to replace: its stage is
retried). The run must end as it would have without the kill: promoted, every stage green, the same
final split, no Route53 change outside the declared steps, no state generation written twice, each
migration applied once, and the retention's deadline the one promotion set (the 24 h clock not reset).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
import pytest

from bluegreen_provider.sandbox.faults import FaultPlan, Gate
from bluegreen_provider.state import DeploymentState, decode_txt, owner_of
from tests.chaos.route53_history import generations
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

pytestmark = [pytest.mark.chaos("process kills"), pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(900)]

STEPS = [step["weight"] for step in FAST["steps"]]
RETENTION_SECONDS = 25  # the teardown's wait outlasts a triggerer's restart and reassignment
PROPAGATION_SECONDS = 4.0  # Route53 PENDING long enough that each shift defers to the triggerer
MIGRATION_GATE_LOCK = 4242  # a test-only migration waits for this advisory lock while the test holds it
KILL_ENV = {
    # A dead triggerer's triggers move to a live one once its heartbeat is this old (default 30 s).
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    # A task whose worker died with the scheduler is reset by the next scheduler's check for orphans
    # (every 300 s by default), once the dead scheduler's heartbeat is 30 s old, and then runs again.
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "15",
}
# Where each stage is held for a kill of the process running it: an AWS call (service, operation, a
# text of its request), or the migration lock.
RUNNING_AT: dict[str, tuple[str, str, str | None] | str] = {
    "plan": ("route53", "ChangeResourceRecordSets", ": plan ("),
    "deploy_green": ("lambda", "UpdateAlias", None),
    "run_migrations": "migration lock",
    "health_check": ("route53", "CreateHealthCheck", None),
    "shift_10": ("route53", "ChangeResourceRecordSets", ": shift to 10 %"),
    "shift_50": ("route53", "ChangeResourceRecordSets", ": shift to 50 %"),
    "shift_100": ("route53", "ChangeResourceRecordSets", ": shift to 100 %"),
    "teardown_blue": ("route53", "ChangeResourceRecordSets", ": retire ("),
}
# Where a deferred stage is held: its trigger's next AWS poll (None: parked awaiting input).
DEFERRED_AT: dict[str, tuple[str, str] | None] = {
    "shift_10": ("route53", "GetChange"),
    "soak_10": ("cloudwatch", "GetMetricData"),
    "soak_50": ("cloudwatch", "GetMetricData"),
    "approval": None,
    "teardown_blue": ("cloudwatch", "GetMetricData"),
}


@dataclass(frozen=True)
class Kill:
    process: str  # "task" (the stage's own process), "scheduler" or "triggerer"
    stage: str
    deferred: bool = False  # killed while the stage waits on the triggerer (or parked for approval)
    second_triggerer: bool = False  # Airflow's triggerer HA: the soak goes on on the other one

    @property
    def name(self) -> str:
        where = f"{self.stage} (deferred)" if self.deferred else self.stage
        return f"{self.process} at {where}" + (" with a second triggerer" if self.second_triggerer else "")


CASES = [
    *(Kill("task", stage) for stage in RUNNING_AT),
    *(Kill("triggerer", stage, deferred=True) for stage in DEFERRED_AT),
    Kill("triggerer", "soak_10", deferred=True, second_triggerer=True),
    *(Kill("scheduler", stage) for stage in ("deploy_green", "run_migrations", "shift_100")),
    *(Kill("scheduler", stage, deferred=True) for stage in ("shift_10", "soak_10", "approval", "teardown_blue")),
]
# Every case starts a run under the real stack (minutes each): they run under `make chaos`. `make test`
# kills a task's process inside an AWS call in tests/e2e/test_scheduler.py, in a run it makes anyway.
FAST_CASES: set[str] = set()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    settings = {"faults": FaultPlan(share=0.0), "propagation_seconds": PROPAGATION_SECONDS}
    with airflow_world(tmp_path_factory.mktemp("kills"), sandbox_settings=settings, airflow_env=KILL_ENV) as started:
        yield started


# -- finding and killing ---------------------------------------------------------------------------
def triggerer_jobs(world: World) -> dict[int, str]:
    """Running triggerer jobs of the metadata DB: id -> latest heartbeat."""
    with psycopg2.connect(world.airflow.sql_alchemy_conn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, latest_heartbeat FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
        return {row[0]: str(row[1]) for row in cur.fetchall()}


def start_triggerer(world: World, name: str) -> int:
    """Start a triggerer as ``name``; returns its job id once it has one."""
    known = set(triggerer_jobs(world))
    world.airflow.spawn("triggerer", name)
    jobs = wait_for(f"{name} to register", lambda: set(triggerer_jobs(world)) - known or None, timeout=90)
    return max(jobs)


def trigger_jobs_of(world: World, run_id: str, task_id: str) -> set[int]:
    """The triggerer jobs that ran ``task_id``'s triggers in this run (from its trigger log files)."""
    logs = world.logs(run_id, task_id, "attempt=*.log.trigger.*.log")
    return {int(m.group(1)) for name in logs if (m := re.search(r"\.trigger\.(\d+)\.log$", name))}


def kill(world: World, case: Kill, run_id: str) -> None:
    """Kill ``case.process`` now, then start it again (a task's process: its worker retries the stage)."""
    airflow = world.airflow
    if case.process == "task":
        pid = wait_for(f"{case.stage}'s process", lambda: world.task_pid(run_id, case.stage), timeout=30)
        os.kill(pid, signal.SIGKILL)
    elif case.process == "scheduler":
        airflow.kill("scheduler")  # with its executor's workers and the task processes they run
        airflow.spawn("scheduler")
    elif case.process == "triggerer":
        if case.deferred and DEFERRED_AT[case.stage] is None:
            # Parked awaiting input: Airflow 3.3 keeps the approval in its database, on no trigger and
            # no triggerer. The triggerer running then dies, and the answer must still resume the run.
            name = "triggerer"
        else:  # a trigger just written waits for a triggerer to claim it
            name = wait_for(
                f"{case.stage}'s trigger on a triggerer", lambda: trigger_holder(world, run_id, case.stage), timeout=60
            )
        airflow.kill(name)
        if not case.second_triggerer:
            airflow.spawn("triggerer", name)
    else:
        raise ValueError(case.process)


_TRIGGERER_NAMES: dict[int, str] = {}
_BUILDS: dict[int, int] = {}


def next_build(world: World) -> int:
    """A build number not deployed yet in this world."""
    key = id(world)
    _BUILDS[key] = _BUILDS.get(key, 0) + 1
    return _BUILDS[key]


def trigger_holder(world: World, run_id: str, task_id: str) -> str | None:
    """The stack's name of the triggerer running ``task_id``'s trigger now (None: none has claimed it yet)."""
    with psycopg2.connect(world.airflow.sql_alchemy_conn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT t.triggerer_id FROM trigger t JOIN task_instance ti ON ti.trigger_id = t.id "
            "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.task_id = %s",
            (DAG_ID, run_id, task_id),
        )
        row = cur.fetchone()
    assert row, f"{task_id} has no trigger"
    return None if row[0] is None else _TRIGGERER_NAMES.get(row[0], "triggerer")


# -- holding a stage still -------------------------------------------------------------------------
class MigrationGate:
    """A test-only migration that waits for an advisory lock the test holds until :meth:`release`."""

    def __init__(self, world: World) -> None:
        assert world.dags is not None
        folder = world.dags / "migrations" / "lego_api"
        version = max(int(p.name[1:].split("__", 1)[0]) for p in folder.glob("V*__*.sql")) + 1
        self.version = version
        self.conn = psycopg2.connect(world.lego_db_url)
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_GATE_LOCK,))
        (folder / f"V{version:03d}__held_{version}.sql").write_text(
            f"-- Waits while the kill test holds advisory lock {MIGRATION_GATE_LOCK}.\n"
            f"SELECT pg_advisory_xact_lock({MIGRATION_GATE_LOCK});\n"
            f"CREATE TABLE held_{version} (id integer);\n"
        )

    def reached(self) -> bool:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted",
                (MIGRATION_GATE_LOCK,),
            )
            return cur.fetchone()[0] > 0

    def release(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_GATE_LOCK,))


def hold_running(world: World, stage: str) -> Gate | MigrationGate:
    at = RUNNING_AT[stage]
    if at == "migration lock":
        return MigrationGate(world)
    service, operation, text = at
    return world.sandbox.hold(service, operation, after_apply=True, matching=text)


def ledger(world: World) -> list[int]:
    with psycopg2.connect(world.lego_db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM bluegreen_schema_migrations ORDER BY version")
        return [row[0] for row in cur.fetchall()]


def state_in(change: dict[str, Any], world: World) -> DeploymentState | None:
    """The deployment state a committed change wrote (None: it wrote none)."""
    from bluegreen_provider.sandbox import route53_rules

    for c in route53_rules.CHANGES.zone(world.sandbox.hosted_zone_id):
        if c.change_id == change["change_id"]:
            for record in c.record_sets:
                if record["Type"] == "TXT" and record["Name"].startswith("_bluegreen."):
                    return DeploymentState.from_json(
                        decode_txt(" ".join(v["Value"] for v in record["ResourceRecords"]))
                    )
    return None


# -- the cases -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.name, marks=() if c.name in FAST_CASES else pytest.mark.slow) for c in CASES],
)
def test_a_killed_process_leaves_the_run_to_end_as_without_the_kill(world: World, case: Kill, report_split) -> None:
    sandbox, airflow = world.sandbox, world.airflow
    try:
        dag_ready(world)
        no_run_active(world)
        live, candidate = live_and_candidate(sandbox.weights())
        release = next_build(world)  # code neither slot runs: deploy_green has work to do
        world.artifact.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sandbox.release_build("v2", release), world.artifact)
        changes_before = len(sandbox.route53_changes())
        if case.second_triggerer:
            _TRIGGERER_NAMES.setdefault(start_triggerer(world, "triggerer-2"), "triggerer-2")
        held = None if case.deferred else hold_running(world, case.stage)

        run_id = f"kill_{case.process}_{case.stage}_{uuid.uuid4().hex[:6]}"
        conf = {
            **FAST,
            "retention_seconds": RETENTION_SECONDS,
            "functions": [{"name": f, "zip_file": str(world.artifact)} for f in FUNCTIONS],
        }
        airflow.api(
            "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        )
        approval = f"{world.run_path(run_id)}/taskInstances/approval"

        def approve() -> None:
            wait_run(world, run_id, 300, until=lambda: world.states(run_id)["approval"] == "awaiting_input")
            wait_for("approval parked", lambda: parking_exit_processed(world, run_id, "approval"), 60)
            airflow.api("PATCH", f"{approval}/-1/hitlDetails", {"chosen_options": ["Approve"], "params_input": {}})

        if case.deferred:
            if case.stage in ("shift_100", "teardown_blue"):
                approve()
            state = "awaiting_input" if case.stage == "approval" else "deferred"
            wait_run(world, run_id, 300, until=lambda: world.states(run_id)[case.stage] == state)
            poll = DEFERRED_AT[case.stage]
            if poll is None:
                wait_for("approval parked", lambda: parking_exit_processed(world, run_id, "approval"), 60)
            else:
                held = sandbox.hold(*poll)
        else:
            if case.stage in ("shift_100", "teardown_blue"):
                approve()
        if held is not None:
            reached = held.reached if isinstance(held, MigrationGate) else lambda: held.wait_reached(0.5)
            assert wait_for(f"{case.stage} to reach its gate", reached, 300, 0.2)
        holder_jobs = trigger_jobs_of(world, run_id, case.stage) if case.process == "triggerer" else set()
        kill(world, case, run_id)
        if held is not None:
            held.release()
        if case.stage not in ("shift_100", "teardown_blue"):
            approve()
        assert wait_run(world, run_id, timeout=420) == "success", world.states(run_id)

        # -- the run ended as it would have without the kill -----------------------------------
        tis = world.task_instances(run_id)
        states = {task: ti["state"] for task, ti in tis.items()}
        expected = {t: "success" for t in states if t != "hold"}
        assert {t: s for t, s in states.items() if t != "hold"} == expected, states
        tries = tis[case.stage]["try_number"]
        if case.process == "task" or (case.process == "scheduler" and not case.deferred):
            assert tries >= 2, f"{case.stage} was not retried after its process died: try {tries}"
        if case.process == "triggerer" and case.stage != "approval":
            assert tries == 1, f"{case.stage} was retried ({tries}); its trigger should have moved instead"
            ran_on = trigger_jobs_of(world, run_id, case.stage)
            assert len(ran_on - holder_jobs) >= 1, f"{case.stage}'s trigger never ran on another triggerer: {ran_on}"
        assert sandbox.weights() == {live: 0, candidate: 100}
        state = deployment_state(sandbox)
        assert (state.owner, state.phase, state.live) == (owner_of(DAG_ID, run_id), "retired", candidate), state
        assert state.split == {live: 0, candidate: 100} and state.retained is None, state

        changes = sandbox.route53_changes()[changes_before:]
        stray = [c["weights"] for c in changes if report_split(c["weights"], STEPS, candidate=None)]
        assert not stray, f"splits outside the declared steps {STEPS} and 100/0: {stray}"
        written = generations(changes)
        assert written == sorted(set(written)), f"a state generation was written twice or out of order: {written}"
        retained = [s.retained.until for c in changes if (s := state_in(c, world)) and s.retained is not None]
        assert retained and len(set(retained)) == 1, f"the retention's deadline changed: {retained}"
        retire = next(c for c in changes if ": retire (" in (c["comment"] or ""))
        assert retire["submitted_at"] >= datetime.fromisoformat(retained[0]).timestamp(), (retire, retained[0])

        versions = ledger(world)
        assert versions == sorted(set(versions)), f"a migration was applied twice: {versions}"
        if isinstance(held, MigrationGate):
            assert held.version in versions

        lam = sandbox.clients()("lambda")
        for fn in FUNCTIONS:
            version = lam.get_alias(FunctionName=fn, Name=f"production-{candidate}")["FunctionVersion"]
            code = lam.get_function(FunctionName=fn, Qualifier=version)["Configuration"]["CodeSha256"]
            assert code == sandbox.release_sha256(f"v2+{release}"), fn
        print(f"\n{case.name}: {case.stage} tries {tries}; {len(changes)} Route53 changes; generations {written}")
    except BaseException:
        print_diagnosis(airflow.home)
        raise
    finally:
        second = airflow.processes.get("triggerer-2")
        if second is not None and second.poll() is None:
            airflow.kill("triggerer-2")
        for name in ("scheduler", "triggerer"):
            if airflow.processes[name].poll() is not None:
                airflow.spawn(name)

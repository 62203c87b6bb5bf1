"""A real Airflow on this machine for end-to-end tests: the sandbox, two Postgres databases and the
four components (``bluegreen_provider.stack``), with REST helpers and waits that always have a deadline.

``airflow_world()`` starts it; the scheduler tests and the process-kill chaos cases use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bluegreen_provider.sandbox import Sandbox
from bluegreen_provider.stack import AirflowStack, drop_postgres_database, ensure_postgres_database

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "blue_green_deploy"
FUNCTIONS = ("lego-api-moc", "lego-api-gallery", "lego-api-wishlist", "lego-api-profile")
T = TypeVar("T")


@dataclass
class World:
    sandbox: Sandbox
    airflow: AirflowStack
    artifact: Path  # the release every function deploys; the test swaps its bytes
    lego_db_url: str = ""  # the service's database (its migrations and their ledger)
    dags: Path | None = None  # the snapshot of the DAG files the stack parses

    def get(self, path: str) -> Any:
        return self.airflow.api("GET", path)

    def run_path(self, run_id: str) -> str:
        return f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"

    def task_instances(self, run_id: str) -> dict[str, dict[str, Any]]:
        tis = self.get(f"{self.run_path(run_id)}/taskInstances?limit=100")["task_instances"]
        return {ti["task_id"]: ti for ti in tis}

    def states(self, run_id: str) -> dict[str, str | None]:
        return {task: ti["state"] for task, ti in self.task_instances(run_id).items()}

    def xcom(self, run_id: str, task_id: str) -> Any:
        entry = f"{self.run_path(run_id)}/taskInstances/{task_id}/xcomEntries/return_value?deserialize=true"
        return self.get(entry)["value"]

    def task_pid(self, run_id: str, task_id: str) -> int | None:
        """The pid of the process running ``task_id`` now (its title is ``airflow worker -- <ti id>``)."""
        ti = self.task_instances(run_id).get(task_id)
        if not ti or ti["state"] != "running":
            return None
        title = f"airflow worker -- {ti['id']}".encode()
        for pid in self.airflow.leftovers():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip() == title:
                    return pid
            except OSError:
                continue
        return None

    def logs(self, run_id: str, task_id: str, pattern: str = "attempt=*.log*") -> dict[str, str]:
        """Task log files of one task, by name (``attempt=N.log``, ``attempt=N.log.trigger.<job>.log``)."""
        folder = self.airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
        return {p.name: p.read_text(errors="replace") for p in sorted(folder.glob(pattern))}


# -- waiting, always with a deadline ---------------------------------------------------------------
def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
    """Poll ``probe`` until it returns something truthy; a REST call that times out is a "not yet"."""
    deadline = time.monotonic() + timeout
    unanswered = ""
    while True:
        try:
            value = probe()
        except (TimeoutError, ConnectionError) as err:  # a loaded api-server; the deadline still holds
            value, unanswered = None, f" (last probe: {err!r})"
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s{unanswered}")
        time.sleep(interval)


def wait_run(world: World, run_id: str, timeout: float, *, until: Callable[[], bool] | None = None) -> str:
    """Wait for the run to end, or (with ``until``) for that condition while the run has not ended."""

    def reached() -> str | None:
        state = world.get(world.run_path(run_id))["state"]
        if until is not None:
            assert state not in ("success", "failed"), f"run ended {state} first: {world.states(run_id)}"
            return "reached" if until() else None
        return state if state in ("success", "failed") else None

    try:
        return wait_for(f"run {run_id}", reached, timeout)
    except TimeoutError as err:
        raise TimeoutError(f"{err}; tasks: {world.states(run_id)}") from None


def parking_exit_processed(world: World, run_id: str, task_id: str) -> bool:
    """The scheduler has handled the executor's event for the worker that parked ``task_id`` (awaiting input).

    Answering sooner loses a race in Airflow 3.3.2 (apache/airflow#72716, #67287): that stale "success"
    of the same try then meets the resumed attempt QUEUED or RUNNING, and the scheduler fails it as
    "killed externally". A person never answers that fast; a bot can. Only the scheduler's log shows it.
    """
    log = (world.airflow.home / "logs" / "scheduler.log").read_text(errors="replace")
    finished = (
        f"TaskInstance Finished: dag_id={DAG_ID}, task_id={task_id}, run_id={run_id}, [^\n]*, state=awaiting_input,"
    )
    return re.search(finished, log) is not None


def dag_parsed(world: World) -> bool:
    errors = world.get("/api/v2/importErrors")["import_errors"]
    assert not errors, f"DAG files failed to import: {errors}"
    try:
        return bool(world.get(f"/api/v2/dags/{DAG_ID}"))
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return False
        raise


def dag_ready(world: World) -> None:
    """The DAG is parsed without import errors and unpaused."""
    wait_for("the DAG to be parsed", lambda: dag_parsed(world), timeout=240, interval=2)
    world.airflow.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})


def no_run_active(world: World) -> None:
    """End any run an earlier test left unfinished (the DAG allows one active run) and wait until it has."""
    active = world.get(f"/api/v2/dags/{DAG_ID}/dagRuns?state=queued&state=running")["dag_runs"]
    for run in active:
        world.airflow.api("PATCH", world.run_path(run["dag_run_id"]), {"state": "failed"})
    for run in active:
        wait_run(world, run["dag_run_id"], timeout=120)


def live_and_candidate(weights: dict[str, int]) -> tuple[str, str]:
    live = next(slot for slot, weight in weights.items() if weight == 100)
    return live, next(slot for slot in weights if slot != live)


# -- set-up and diagnosis --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def print_diagnosis(home: Path) -> None:
    """Tails of every component log and of the task logs: what a CI failure needs to be read."""
    logs = home / "logs"
    for path in sorted(logs.glob("*.log")):
        print(f"\n===== {path.name} (tail) =====\n{tail(path)}")
    for path in sorted(logs.glob(f"dag_id={DAG_ID}/**/*.log*"), key=lambda p: p.stat().st_mtime)[-12:]:
        print(f"\n===== {path.relative_to(logs)} (tail) =====\n{tail(path, 25)}")


@contextlib.contextmanager
def airflow_world(
    tmp: Path,
    *,
    sandbox_settings: Mapping[str, Any] | None = None,
    airflow_env: Mapping[str, str] | None = None,
    executor: str = "LocalExecutor",
) -> Iterator[World]:
    """Sandbox, two fresh Postgres DBs (app migrations, Airflow metadata) and the four components.

    With ``executor="CeleryExecutor"`` a Celery worker runs the tasks, over this machine's Redis
    (``BLUEGREEN_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``) on a queue of this world's own.
    """
    suffix = uuid.uuid4().hex[:8]
    lego_db, meta_db = f"bg_sched_lego_{suffix}", f"bg_sched_meta_{suffix}"
    with contextlib.ExitStack() as cleanup:
        sandbox = cleanup.enter_context(
            Sandbox(
                state_dir=tmp / "sandbox", **{"rate_per_second": 40, "flush_seconds": 1, **(sandbox_settings or {})}
            )
        )
        for release in ("v2", "bad"):
            sandbox.release_zip(release)
        lego_url = ensure_postgres_database(lego_db).replace("+psycopg2", "")
        cleanup.callback(drop_postgres_database, lego_db)
        meta_url = ensure_postgres_database(meta_db)
        cleanup.callback(drop_postgres_database, meta_db)
        home = tmp / "airflow"
        # A snapshot of the repo's DAG files: the run must not see a file half-way through an edit.
        dags = shutil.copytree(REPO / "dags", tmp / "dags", ignore=shutil.ignore_patterns("__pycache__"))
        airflow = AirflowStack(
            home=home,
            dags_folder=dags,
            sql_alchemy_conn=meta_url,
            port=free_port(),
            executor=executor,
            celery_broker_url=os.environ.get("BLUEGREEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            celery_queue=f"bluegreen-{suffix}",
            worker_log_port=free_port(),
            trigger_log_port=free_port(),
            extra_env={
                "AIRFLOW_CONN_LEGO_DB": lego_url,
                "BLUEGREEN_HEALTH_BASE_URL": sandbox.http_url,
                "BLUEGREEN_RELEASES_DIR": str(sandbox.state_dir / "releases"),
                **(airflow_env or {}),
            },
        )
        cleanup.callback(assert_nothing_left, airflow)
        try:
            airflow.start(timeout=300)  # a failed or slow start stops what it started, then raises
        except BaseException:
            print_diagnosis(home)
            raise
        cleanup.callback(airflow.stop)  # runs first: before the checks and drops above
        assert len(airflow.leftovers()) > len(airflow.processes), "the census that checks stop() must see the stack"
        # aws_default lives in the metadata DB, as when it is set in the UI: tasks read it through the
        # Execution API, triggers through the triggerer's supervisor, from the threads their hooks run in.
        aws = json.loads(sandbox.connection_json())
        airflow.api(
            "POST", "/api/v2/connections", {**aws, "connection_id": "aws_default", "extra": json.dumps(aws["extra"])}
        )
        yield World(sandbox, airflow, artifact=tmp / "artifact" / "release.zip", lego_db_url=lego_url, dags=dags)


def assert_nothing_left(airflow: AirflowStack) -> None:
    """Every process the stack started (component, executor worker, task or trigger runner) is gone."""
    try:
        wait_for("every process of the stack to exit", lambda: not airflow.leftovers(), timeout=15, interval=0.5)
    except TimeoutError:
        left = {
            pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:150] for pid in airflow.leftovers()
        }
        raise AssertionError(f"processes of the stack still running after stop: {left}") from None

"""A real, small Airflow on this machine: api-server, scheduler, dag-processor and triggerer.

With ``executor="CeleryExecutor"`` a Celery worker runs the tasks instead of the scheduler's local
workers, over Redis (``celery_broker_url``) with results in the metadata database: the distributed
setup of ``docker-compose.yaml``, on one machine.

``airflow standalone`` orphans its children on SIGTERM and starts 32 LocalExecutor workers; this
starts each component in its own process group, sized for a small machine (parallelism 4), with
PostgreSQL as the metadata DB, and stops every process it started — on Ctrl-C too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bluegreen_provider.locations import local_dags_folder, local_plugins_folder

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
CELERY_WORKER = "celery-worker"
EXECUTORS = ("LocalExecutor", "CeleryExecutor")


def ensure_postgres_database(name: str, *, host: str = "127.0.0.1", port: int = 5432, user: str = "postgres") -> str:
    """Create the database if missing; returns its SQLAlchemy URL (psycopg2)."""
    import psycopg2

    conn = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"postgresql+psycopg2://{user}@{host}:{port}/{name}"


def drop_postgres_database(name: str, *, host: str = "127.0.0.1", port: int = 5432, user: str = "postgres") -> None:
    """Drop the database if it exists, closing any session still connected to it."""
    import psycopg2

    conn = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def session_processes(sessions: Collection[int]) -> list[int]:
    """Live (not zombie) processes of the given sessions (Linux ``/proc``).

    Each component is a session leader (``start_new_session``) and Airflow never calls ``setsid``, so
    its session holds everything it started: task runners move to process groups of their own
    (``os.setpgid``), which ``killpg`` on the component's group does not reach, but not to another
    session. ``AIRFLOW_HOME`` in ``/proc/<pid>/environ`` is no census: ``setproctitle`` overwrites it.
    """
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state, _ppid, _pgrp, session = (proc / "stat").read_bytes().rsplit(b") ", 1)[1].split()[:4]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if state != b"Z" and int(session) in sessions:
            found.append(int(proc.name))
    return found


@dataclass
class AirflowStack:
    """Start/stop the Airflow components as child processes; a context manager."""

    home: Path
    sql_alchemy_conn: str
    port: int = 8080
    extra_env: Mapping[str, str] = field(default_factory=dict)
    parallelism: int = 4
    dags_folder: Path = field(default_factory=local_dags_folder)
    plugins_folder: Path | None = field(default_factory=local_plugins_folder)  # None: Airflow's default
    executor: str = "LocalExecutor"
    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    # The stack's own Celery queue: two stacks on one broker never take each other's tasks.
    celery_queue: str = "default"
    worker_log_port: int = 8793  # where a Celery worker serves its task logs to the api-server
    trigger_log_port: int = 8794  # where the triggerer serves its triggers' logs to the api-server
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    sessions: set[int] = field(default_factory=set)  # one per component ever started, led by its pid

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")

    @property
    def components(self) -> tuple[str, ...]:
        """What ``start()`` runs: the four components, and a Celery worker when Celery runs the tasks."""
        return COMPONENTS + ((CELERY_WORKER,) if self.executor == "CeleryExecutor" else ())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API_AUTH__JWT_SECRET": "bluegreen-local-stack",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
                "AIRFLOW__TRIGGERER__CAPACITY": "100",
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
                # A worker may notice that its task process exited (deferred, awaiting input) only at
                # its next heartbeat check, 5 s by default. When the task resumes sooner, that stale
                # "success" of the same try meets the resumed attempt QUEUED or RUNNING and the
                # scheduler fails it as killed externally (apache/airflow#72716 and #67287, open in
                # 3.3.2). At 1 s no trigger of ours fires first; a human-in-the-loop answer still can.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            }
        )
        if self.plugins_folder is not None:
            env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(self.plugins_folder)
        if self.executor == "CeleryExecutor":
            env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": self.celery_broker_url,
                    # Celery's database result backend speaks SQLAlchemy: "db+" and the metadata DB's URL.
                    "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.sql_alchemy_conn.replace("+psycopg2", ""),
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.parallelism),
                    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.celery_queue,
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
                }
            )
        env.update(self.extra_env)
        return env

    def migrate(self, *, timeout: float = 300) -> None:
        """``airflow db migrate``, bounded; its output is kept in ``logs/migrate.log``."""
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / "migrate.log").open("ab") as log:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode:
            raise RuntimeError(f"airflow db migrate exited with {result.returncode}; see {logs / 'migrate.log'}")

    def start(self, *, timeout: float = 120) -> AirflowStack:
        """Migrate, start the components and wait for the API; stops what it started if any step fails."""
        try:
            self.migrate()
            for component in self.components:
                self.spawn(component)
            self.wait_ready(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def spawn(self, component: str, name: str | None = None) -> subprocess.Popen[bytes]:
        """Start one component as ``name`` (default: the component), e.g. a second ``triggerer``.

        Each runs in a session of its own, logging to ``logs/<name>.log`` (appended across restarts).
        """
        if component not in self.components:
            raise ValueError(f"unknown Airflow component {component!r}; one of {self.components}")
        name = name or component
        running = self.processes.get(name)
        if running is not None and running.poll() is None:
            raise RuntimeError(f"airflow {name} is already running (pid {running.pid})")
        args = [sys.executable, "-m", "airflow", component]
        if component == CELERY_WORKER:
            args = [sys.executable, "-m", "airflow", "celery", "worker", "--queues", self.celery_queue]
            args += ["--celery-hostname", f"{self.celery_queue}@%h", "--without-mingle", "--without-gossip"]
        if component == "api-server":
            args += ["--port", str(self.port), "--host", "127.0.0.1", "--workers", "1"]
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{name}.log").open("ab") as log:  # the child keeps its own copy
            self.processes[name] = subprocess.Popen(
                args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.sessions.add(self.processes[name].pid)
        return self.processes[name]

    def kill(self, name: str) -> list[int]:
        """``kill -9`` a running component and everything it started, as when its machine dies.

        That is its whole session: a scheduler's executor workers and the task processes they run, a
        triggerer's trigger runner. Returns the pids killed.
        """
        proc = self.processes[name]
        if proc.poll() is not None:
            raise RuntimeError(f"airflow {name} is not running")
        pids = [proc.pid, *(pid for pid in session_processes({proc.pid}) if pid != proc.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        return pids

    def wait_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited with {proc.returncode}; see {self.home}/logs/{name}.log")
            try:
                self.api("GET", "/api/v2/version")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise TimeoutError(f"Airflow API did not answer on {self.url} within {timeout:.0f} s")

    def stop(self, *, grace: float = 20) -> None:
        """Stop every component and everything it started, task runners included.

        SIGTERM to each component's process group, up to ``grace`` seconds for them to stop their
        children, then SIGKILL to whatever is left in their sessions.
        """
        for proc in self.processes.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group, e.g. executor workers
            proc.wait()
        for pid in self.leftovers():  # e.g. a task runner in a process group of its own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.processes.clear()

    def leftovers(self) -> list[int]:
        """Live processes of the stack's sessions; empty once ``stop()`` is done (modulo reaping)."""
        return session_processes(self.sessions)

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- REST API -------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 10) -> Any:
        """One REST call; an HTTP error keeps its status (``.code``) and says the API's ``detail``."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with _opener.open(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:2000]
            message = f"{method} {path}: {err.reason}: {detail}"
            raise urllib.error.HTTPError(err.url, err.code, message, err.headers, None) from err
        return json.loads(raw) if raw else None


# Loopback only: never send the local API's calls through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

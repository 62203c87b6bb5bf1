"""``make demo`` and ``make airflow``: the whole product on this machine, against the sandbox.

The demo runs the real ``blue_green_deploy`` DAG with ``dag.test()`` and short timings, while the
sandbox sends live traffic through whatever Route53 says. Only here is the approval answered by a
program (through the same REST call as the UI's Approve button); the DAG itself is unchanged.

``--profile aws`` runs the same on the sandbox's AWS-like profile (30 s propagation, 60 s DNS TTL,
60 s CloudWatch datapoints two minutes late, eight health checkers, Route53 throttling). Its soaks
must outlast the metrics' lag, so the DAG's soak and poll params are scaled to AWS_DEMO_TIMINGS
(minutes, not the story's 5 and 10): the demo says so, and its report shows when each Route53 change
went INSYNC and when the last request reached each slot.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from bluegreen_provider.example_dags import DEPLOY_DAG_ID as DAG_ID
from bluegreen_provider.locations import EXAMPLE_DAGS, local_dags_folder, state_root

# The demo runs the example the package ships, so it runs the same from a wheel as from a checkout.
DAG_FILE = EXAMPLE_DAGS / "blue_green_deploy.py"

SCENARIOS: dict[str, dict[str, Any]] = {
    "happy": {"release": "v2", "approval": "Approve", "about": "a good release, approved, promoted"},
    "bad-release": {"release": "bad", "approval": "Approve", "about": "a faulty release: rollback at 10 %"},
    "alarm": {"release": "v2", "approval": "Approve", "about": "an alarm fires at 50 %: rollback"},
    "reject": {"release": "v2", "approval": "Reject", "about": "the approver rejects: held at 50/50"},
    "late-breach": {
        "release": "v2",
        "approval": "Approve",
        "about": "promoted, then an alarm while blue is retained: automatic rollback to blue",
    },
}

DEMO_TIMINGS: dict[str, Any] = {
    "steps": [
        {"weight": 10, "soak_seconds": 20},
        {"weight": 50, "soak_seconds": 20},
        {"weight": 100, "soak_seconds": 0},
    ],
    "poll_interval_seconds": 1,
    "min_requests": 10,
    # The fast sandbox publishes one datapoint per second, about a second late.
    "metrics_period_seconds": 1,
    "metrics_lag_seconds": 1,
    "approval_timeout_seconds": 600,
    "retention_seconds": 15,
}

# On the aws profile a datapoint is visible ~3 minutes after its minute begins: a soak shorter than
# that sees no data. These are the story's params scaled so a run takes minutes, not a quarter hour.
AWS_DEMO_TIMINGS: dict[str, Any] = {
    "steps": [
        {"weight": 10, "soak_seconds": 300},
        {"weight": 50, "soak_seconds": 300},
        {"weight": 100, "soak_seconds": 0},
    ],
    "poll_interval_seconds": 15,
    "min_requests": 10,
    "metrics_period_seconds": 60,
    "metrics_lag_seconds": 120,
    "approval_timeout_seconds": 600,
    "retention_seconds": 30,
}


def _postgres_db_url(name: str) -> str:
    from bluegreen_provider.stack import ensure_postgres_database

    ensure_postgres_database(name)
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _prepare_airflow_env(home: Path) -> None:
    """Point Airflow at a private home and metadata DB before anything imports it."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("BLUEGREEN_DEMO_LOG_LEVEL", "WARNING"),
            "AIRFLOW__API_AUTH__JWT_SECRET": "bluegreen-demo-" + "0" * 49,
        }
    )
    warnings.simplefilter("ignore")  # library deprecation chatter would bury the timeline
    marker = home / ".migrated"
    if not marker.exists():
        print("· preparing Airflow's metadata DB (first run only) …", flush=True)
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        marker.touch()


class Progress(threading.Thread):
    """Prints a line whenever a stage changes state, with the split and the failed requests so far."""

    def __init__(self, sandbox: Any, started: float, previous_run: str | None):
        super().__init__(daemon=True, name="demo-progress")
        self.sandbox, self.started, self.previous_run = sandbox, started, previous_run
        self.stop_event = threading.Event()
        self.seen: dict[str, str | None] = {}

    def run(self) -> None:
        from bluegreen_provider.localrun import latest_run_id, task_states

        while not self.stop_event.wait(0.5):
            run_id = latest_run_id(DAG_ID)
            if run_id is None or run_id == self.previous_run:
                continue
            for task_id, state in task_states(DAG_ID, run_id).items():
                if state in (None, "scheduled", "queued", "none") or self.seen.get(task_id) == state:
                    continue
                self.seen[task_id] = state
                self.emit(f"{task_id:<15} {state}")

    def emit(self, what: str) -> None:
        stats = self.sandbox.stats()
        weights = self.sandbox.weights()
        failed = {slot: s.get("errors", 0) for slot, s in stats.items() if isinstance(s, dict)}
        print(
            f"  {time.monotonic() - self.started:6.1f}s  {what:<32} split blue {weights.get('blue')} / "
            f"green {weights.get('green')}   failed requests: "
            + ", ".join(f"{k} {v}" for k, v in sorted(failed.items())),
            flush=True,
        )


def _alarm_at_50(sandbox: Any, stop: threading.Event) -> None:
    """The 'alarm' scenario: once green carries 50 %, a CloudWatch alarm fires (as on-call would see)."""
    while not stop.wait(0.2):
        if sandbox.weights().get("green") == 50:
            sandbox.force_alarm("lego-api-gateway-5xx-errors", reason="p99 latency and 5xx spike after 50 % shift")
            return


def _alarm_after_promotion(sandbox: Any, stop: threading.Event, delay: float) -> None:
    """The 'late-breach' scenario: ``delay`` seconds after green takes 100 % (hours, on a real service),
    a CloudWatch alarm fires while blue is still retained."""
    while not stop.wait(0.2):
        if sandbox.weights().get("green") == 100:
            if not stop.wait(delay):
                sandbox.force_alarm("lego-api-gateway-5xx-errors", reason="5xx spike long after the promotion")
            return


def _profile_from_env(profile: str | None) -> str:
    return profile or os.environ.get("BLUEGREEN_SANDBOX_PROFILE", "fast")


def run_demo(scenario: str = "happy", profile: str | None = None, overrides: dict[str, Any] | None = None) -> int:
    profile = _profile_from_env(profile)
    if scenario not in SCENARIOS:
        print(f"unknown scenario {scenario!r}; choose one of {sorted(SCENARIOS)}", file=sys.stderr)
        return 2
    plan = SCENARIOS[scenario]
    home = state_root() / ".airflow" / "demo"
    state_dir = state_root() / ".sandbox" / "demo"
    _prepare_airflow_env(home)

    from bluegreen_provider.sandbox import Sandbox

    print(f"bluegreen demo — scenario '{scenario}': {plan['about']} (sandbox profile {profile})", flush=True)
    timings = DEMO_TIMINGS if profile == "fast" else AWS_DEMO_TIMINGS
    if profile != "fast":
        soaks = ", ".join(f"{s['weight']} % for {s['soak_seconds']} s" for s in timings["steps"][:-1])
        print(
            f"· profile {profile}: AWS timings, so the DAG's soaks are scaled to {soaks} and polls to "
            f"{timings['poll_interval_seconds']} s (story: 300 s / 600 s, 30 s); expect several minutes",
            flush=True,
        )
    with Sandbox(
        rate_per_second=40, flush_seconds=1, state_dir=state_dir, profile=profile, **(overrides or {})
    ) as sandbox:
        releases = state_dir / "releases"
        for name in ("v1", "v2", "bad", "unhealthy"):
            sandbox.release_zip(name)
        os.environ.update(sandbox.connection_env("aws_default"))
        os.environ["AIRFLOW_CONN_LEGO_DB"] = _postgres_db_url("lego_demo")
        os.environ["BLUEGREEN_HEALTH_BASE_URL"] = sandbox.http_url
        os.environ["BLUEGREEN_RELEASES_DIR"] = str(releases)
        print(f"· sandbox: moto {sandbox.endpoint_url}, traffic 40 req/s on api.lego-mocs.com", flush=True)

        from bluegreen_provider.localrun import ApprovalResponder, latest_run_id, task_rows, xcom

        sys.path.append(str(DAG_FILE.parent))  # as Airflow's bundle parsing does
        dag = runpy.run_path(str(DAG_FILE))["deploy"]
        # The functions param keeps its default (the service's function names); they all take this release.
        conf = {**timings, "release": {"label": plan["release"], "zip_file": str(releases / f"{plan['release']}.zip")}}
        started = time.monotonic()
        started_wall = time.time()
        progress = Progress(sandbox, started, previous_run=latest_run_id(DAG_ID))
        stop = threading.Event()
        answer = plan["approval"]
        responder = ApprovalResponder(
            DAG_ID, action=answer, before_answer=lambda run_id: progress.emit(f"approval asked: demo says {answer}")
        )
        responder.start()
        progress.start()
        if scenario == "alarm":
            threading.Thread(target=_alarm_at_50, args=(sandbox, stop), daemon=True).start()
        if scenario == "late-breach":
            # Retained long enough for the guard to see the alarm; the alarm comes a third of the way in.
            conf["retention_seconds"] = 3 * conf["retention_seconds"]
            delay = conf["retention_seconds"] / 3
            threading.Thread(target=_alarm_after_promotion, args=(sandbox, stop, delay), daemon=True).start()
        try:
            dr = dag.test(run_conf=conf)
        finally:
            responder.cancel()
        stop.set()
        time.sleep(0.6)  # let the progress printer report the final states it already polled
        progress.stop_event.set()
        _wait_for_dns_drain(sandbox)
        wall = time.monotonic() - started
        print(_report(dr, sandbox, wall, task_rows, xcom), flush=True)
        print(_timeline(sandbox, started_wall), flush=True)
        return 0 if (dr.state == "success") == (scenario == "happy") else 1


def _report(dr: Any, sandbox: Any, wall: float, task_rows: Any, xcom: Any) -> str:
    lines = ["", f"run {dr.run_id}: {dr.state.upper()} in {wall:.0f} s", "", "  stage            state        seconds"]
    for row in task_rows(DAG_ID, dr.run_id):
        seconds = f"{row['duration_s']:.1f}" if row["duration_s"] is not None else "-"
        lines.append(f"  {row['task_id']:<16} {row['state'] or '-':<12} {seconds:>7}")
    for task_id in ("shift_10", "soak_10", "shift_50", "soak_50", "teardown_blue"):
        verdict = xcom(DAG_ID, dr.run_id, task_id, key="verdict")
        if isinstance(verdict, dict):
            lines.append(f"  {task_id} FAILED: {verdict.get('message')}")
        summary = xcom(DAG_ID, dr.run_id, task_id) if task_id.startswith("soak_") else None
        if isinstance(summary, dict):
            lines.append(
                f"  {task_id}: {summary.get('requests')} requests, {summary.get('errors')} errors, "
                f"error rate {summary.get('rate_pct')} % (max {summary.get('max_rate_pct')} %)"
            )
    weights = sandbox.weights()
    stats = sandbox.stats()
    lines.append("")
    lines.append(f"  final split: blue {weights.get('blue')} / green {weights.get('green')}")
    for slot in ("blue", "green"):
        s = stats.get(slot, {})
        if isinstance(s, dict):
            lines.append(f"  {slot}: {s.get('requests', 0)} requests served, {s.get('errors', 0)} failed")
    return "\n".join(lines)


def _wait_for_dns_drain(sandbox: Any, limit: float = 180.0) -> None:
    """Keep traffic running until the last change is INSYNC and every cached answer has expired, so
    the report's "last request" is when traffic really stopped, not when the demo did."""
    changes = sandbox.route53_changes()
    if not changes:
        return
    until = min(changes[-1]["insync_at"] + sandbox.profile.dns_ttl_seconds + 2.0, time.time() + limit)
    if until - time.time() > 2:
        print(f"· waiting {until - time.time():.0f} s for the last change to go INSYNC and DNS caches to expire",
              flush=True)  # fmt: skip
    while time.time() < until:
        time.sleep(min(1.0, max(0.0, until - time.time())))


def _timeline(sandbox: Any, since: float) -> str:
    """When each Route53 change of the run went INSYNC, and when the last request reached each slot."""
    lines = ["", f"  Route53 and traffic (sandbox profile {sandbox.profile.name}, seconds from the start):"]
    history = sandbox.route53_changes()
    before = [c["weights"] for c in history if c["submitted_at"] < since]
    previous = before[-1] if before else None
    changes = []
    for change in (c for c in history if c["submitted_at"] >= since):
        weights = change["weights"]
        if not weights or weights == previous:
            continue  # the deployment's own state records, not a change of the split
        previous = weights
        changes.append(change)
        lines.append(
            f"  change {change['change_id']}: blue {weights.get('blue')} / green {weights.get('green')} "
            f"submitted at {change['submitted_at'] - since:6.1f} s, INSYNC at {change['insync_at'] - since:6.1f} s"
        )
    for slot in ("blue", "green"):
        last = sandbox.last_request_at(slot)
        if last is None or last < since:
            lines.append(f"  last request to {slot}: none during the run")
            continue
        text = f"  last request to {slot}: {last - since:6.1f} s"
        drained = [c for c in changes if c["weights"] and c["weights"].get(slot) == 0 and c["submitted_at"] <= last]
        if drained:
            cut = drained[-1]
            text += (
                f" ({last - cut['submitted_at']:.1f} s after the change to {slot} 0 was submitted, "
                f"{last - cut['insync_at']:+.1f} s from its INSYNC; DNS TTL {sandbox.profile.dns_ttl_seconds:g} s)"
            )
        lines.append(text)
    return "\n".join(lines)


def run_airflow(port: int = 8080, profile: str | None = None, overrides: dict[str, Any] | None = None) -> int:
    """Airflow (Postgres metadata DB, LocalExecutor) and the sandbox, until Ctrl-C; no orphans.

    The sandbox leaves its state file in ``.sandbox/airflow`` meanwhile, so ``bluegreen status`` and
    ``bluegreen rollback`` run from the same directory act on it.
    """
    from bluegreen_provider.sandbox import Sandbox
    from bluegreen_provider.sandbox.state import SandboxState, remove_state, write_state
    from bluegreen_provider.stack import AirflowStack, ensure_postgres_database

    profile = _profile_from_env(profile)
    state_dir = state_root() / ".sandbox" / "airflow"
    with Sandbox(
        rate_per_second=20, flush_seconds=5, state_dir=state_dir, profile=profile, **(overrides or {})
    ) as sandbox:
        for name in ("v1", "v2", "bad", "unhealthy"):
            sandbox.release_zip(name)
        env = {
            **sandbox.connection_env("aws_default"),
            "AIRFLOW_CONN_LEGO_DB": _postgres_db_url("lego_airflow"),
            "BLUEGREEN_HEALTH_BASE_URL": sandbox.http_url,
            "BLUEGREEN_RELEASES_DIR": str(state_dir / "releases"),
        }
        stack = AirflowStack(
            home=state_root() / ".airflow" / "stack",
            sql_alchemy_conn=ensure_postgres_database("bluegreen_airflow"),
            port=port,
            extra_env=env,
            dags_folder=local_dags_folder(),
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        write_state(
            state_dir,
            SandboxState.of(sandbox, os.getpid()),
        )
        try:
            print("starting Airflow (api-server, scheduler, dag-processor, triggerer) …", flush=True)
            with stack:
                print(
                    f"\nAirflow is up: {stack.url}  (no login needed)\n"
                    f"  sandbox AWS: {sandbox.endpoint_url} (profile {sandbox.profile.name})   "
                    f"traffic status: {sandbox.http_url}/status\n"
                    f"  DAG: blue_green_deploy — unpause it, trigger it, approve at the 'approval' task\n"
                    f"  on-call CLI, from this directory: bluegreen --dags-folder {stack.dags_folder} status\n"
                    f"  stop: Ctrl-C\n",
                    flush=True,
                )
                try:
                    while not stop.wait(1):
                        pass
                except KeyboardInterrupt:
                    pass
                print("stopping …", flush=True)
        finally:
            remove_state(state_dir, os.getpid())
    print("stopped; no process left behind.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bluegreen_provider.demo [--airflow] [--scenario S] [--profile P] [--set K=V]``."""
    from bluegreen_provider.sandbox.profile import PROFILES, parse_overrides

    parser = argparse.ArgumentParser(prog="python -m bluegreen_provider.demo")
    parser.add_argument("scenario_arg", nargs="?", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", default=None, choices=sorted(SCENARIOS))
    parser.add_argument("--profile", default=None, choices=sorted(PROFILES), help="sandbox profile (default fast)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SETTING=VALUE")
    parser.add_argument("--airflow", action="store_true", help="start Airflow and the sandbox instead")
    parser.add_argument("--port", type=int, default=8080, help="Airflow UI port (with --airflow)")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.overrides)
    if args.airflow:
        return run_airflow(port=args.port, profile=args.profile, overrides=overrides)
    return run_demo(args.scenario or args.scenario_arg or "happy", profile=args.profile, overrides=overrides)


if __name__ == "__main__":
    sys.exit(main())

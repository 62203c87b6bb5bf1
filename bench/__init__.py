"""Benchmarks of bluegreen against the sandbox: speed and memory goals live here, never in timed tests.

Each module ``bench/<name>.py`` exposes ``NAME``, ``DEFAULT_REPS`` and ``run(reps, **params)`` returning
a :class:`BenchResult`; ``python -m bench [name ...]`` runs them, prints one table and merges the
results into ``bench/results.json``. This module holds what they share: summary statistics, a counter
of AWS API calls, the lego-api spec as the shipped DAG configures it, and sandbox helpers.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import platform
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bluegreen_provider.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).resolve().parent / "results.json"

# Alarms watched by the shipped DAG (dags/blue_green_deploy.py); the sandbox seeds these and one more.
LEGO_ALARMS: tuple[str, ...] = ("lego-api-gateway-5xx-errors", "lego-api-moc-errors", "lego-api-gallery-errors")
OWNER = "bench_deploy/bench_run"


# -- statistics ------------------------------------------------------------------------------------


def summarize(samples: Sequence[float]) -> dict[str, float | int | None]:
    """median / p95 / max (and n, min) of a sample; p95 by nearest rank, so it is a value actually seen."""
    values = sorted(float(v) for v in samples if v is not None)
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None, "min": None}
    rank = max(1, math.ceil(0.95 * len(values)))
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p95": values[rank - 1],
        "max": values[-1],
        "min": values[0],
    }


@dataclass
class Metric:
    """One measured quantity: its samples' summary, its unit and what it means."""

    name: str
    unit: str
    summary: dict[str, float | int | None]
    note: str = ""

    @classmethod
    def of(cls, name: str, unit: str, samples: Sequence[float], note: str = "") -> Metric:
        return cls(name, unit, summarize(samples), note)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, **self.summary, "note": self.note}


@dataclass
class BenchResult:
    """What one benchmark reports: parameters used, metrics, free-form details and caveats."""

    name: str
    params: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    measured_at: str = ""
    goals: list[Goal] = field(default_factory=list)
    # Charts to draw next to RESULTS.md: {"file", "title", "kind": "line"|"bar", "series"/"bars", labels}.
    plots: list[dict[str, Any]] = field(default_factory=list)
    # Markdown tables (header row + rows) for RESULTS.md, in the order added.
    tables: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, unit: str, samples: Sequence[float], note: str = "") -> None:
        self.metrics.append(Metric.of(name, unit, samples, note))

    def goal(
        self, name: str, target: float, measured: float | None, unit: str, *, at_most: bool = True, limit: str = ""
    ) -> Goal:
        """Record a goal: met when ``measured`` is at most (or at least) ``target``."""
        goal = Goal(name, target, measured, unit, at_most, limit)
        self.goals.append(goal)
        return goal

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.tables.append({"title": title, "header": list(header), "rows": [list(r) for r in rows]})

    def to_dict(self) -> dict[str, Any]:
        return {
            "measured_at": self.measured_at or datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(self.seconds, 1),
            "params": self.params,
            "metrics": [m.to_dict() for m in self.metrics],
            "details": self.details,
            "notes": self.notes,
            "goals": [g.to_dict() for g in self.goals],
            "tables": self.tables,
        }


@dataclass
class Goal:
    """A target from the story or the design: met or missed, and by how much."""

    name: str
    target: float
    measured: float | None
    unit: str
    at_most: bool = True
    limit: str = ""  # what limits the figure (filled in by the benchmark)

    @property
    def met(self) -> bool:
        if self.measured is None or math.isnan(self.measured):
            return False
        return self.measured <= self.target if self.at_most else self.measured >= self.target

    def verdict(self) -> str:
        if self.measured is None:
            return "not measured"
        sign = "≤" if self.at_most else "≥"
        if self.met:
            return f"met ({fmt(self.measured)} {self.unit} {sign} {fmt(self.target)})"
        gap = self.measured - self.target if self.at_most else self.target - self.measured
        ratio = self.measured / self.target if self.target and self.at_most else None
        extra = f", {ratio:.1f}x the target" if ratio else ""
        return f"missed by {fmt(gap)} {self.unit} ({fmt(self.measured)} vs {sign} {fmt(self.target)}{extra})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "measured": self.measured,
            "unit": self.unit,
            "at_most": self.at_most,
            "met": self.met,
            "verdict": self.verdict(),
            "limit": self.limit,
        }


def fmt(value: Any) -> str:
    """A number short enough for a table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e6):
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.2f}"
    return f"{value:.2e}"


def spread(samples: Sequence[float]) -> str:
    """``median [min-max]`` of a sample, for a table cell."""
    s = summarize(samples)
    if not s["n"]:
        return "-"
    if s["n"] == 1:
        return fmt(s["median"])
    return f"{fmt(s['median'])} [{fmt(s['min'])}-{fmt(s['max'])}]"


def aws_scaled(scale: float, **overrides: Any) -> dict[str, Any]:
    """The ``aws`` profile's timings multiplied by ``scale`` (its rate limits unchanged).

    The metrics period is rounded to whole seconds (CloudWatch periods are integers); the lag is
    kept at twice the period, as in the profile (60 s datapoints, 120 s late).
    """
    from bluegreen_provider.sandbox.profile import PROFILES

    aws = PROFILES["aws"]
    period = max(1, round(aws.metrics_period_seconds * scale))  # type: ignore[operator]
    if period not in (1, 5, 10, 30) and period % 60:
        raise ValueError(f"scale {scale:g} gives a {period} s metrics period; CloudWatch takes 1, 5, 10, 30 or n x 60")
    settings: dict[str, Any] = {
        "profile": "aws",
        "propagation_seconds": aws.propagation_seconds * scale,
        "dns_ttl_seconds": aws.dns_ttl_seconds * scale,
        "metrics_period_seconds": float(period),
        "metrics_lag_seconds": float(2 * period),
        "prior_request_seconds": aws.prior_request_seconds * scale,
        # Eight health checkers probing every slot cost CPU this 2-core host needs; no rule here uses them.
        "health_checkers": 0,
    }
    settings.update(overrides)
    return settings


def machine() -> dict[str, Any]:
    """Enough about the host to tell whether two result files are comparable."""
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        mem_gib = round(int(kib.split()[1]) / 1024 / 1024, 1)
    versions: dict[str, str] = {}
    for package in ("apache-airflow", "moto", "boto3"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[package] = version(package)
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "mem_gib": mem_gib,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        **versions,
    }


# -- counting AWS API calls ------------------------------------------------------------------------


class ApiCalls:
    """Every botocore API call made while active, by ``service.Operation``, with time spent in each.

    Patching ``BaseClient._make_api_call`` sees the hooks' own clients (each hook builds its session
    from the Airflow connection, so per-client event hooks would miss the ones created mid-call).
    ``include`` picks the threads that count: the sandbox's traffic thread also calls moto.
    """

    def __init__(self, include: Callable[[threading.Thread], bool] | None = None) -> None:
        self.include = include or (lambda thread: not thread.name.startswith("sandbox-"))
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.seconds.clear()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.calls.items()))

    @contextlib.contextmanager
    def active(self) -> Iterator[ApiCalls]:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        counter = self

        def counted(client: Any, operation_name: str, api_params: Any) -> Any:
            if not counter.include(threading.current_thread()):
                return original(client, operation_name, api_params)
            started = time.perf_counter()
            try:
                return original(client, operation_name, api_params)
            finally:
                key = f"{client.meta.service_model.service_name}.{operation_name}"
                with counter._lock:
                    counter.calls[key] += 1
                    counter.seconds[key] += time.perf_counter() - started

        BaseClient._make_api_call = counted  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BaseClient._make_api_call = original  # type: ignore[method-assign]


# -- the lego-api world ----------------------------------------------------------------------------


def quiet_logs() -> None:
    """Airflow's INFO lines (one per hook connection) would bury the table; keep warnings and up."""
    import logging

    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    for name in ("bluegreen_provider", "botocore", "urllib3", "werkzeug"):
        logging.getLogger(name).setLevel(logging.ERROR)


def airflow_env() -> None:
    """The environment ``make bench`` gives: Airflow's home inside the repo, quiet logs."""
    os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))
    quiet_logs()


@contextlib.contextmanager
def aws_connection(sandbox: Sandbox) -> Iterator[None]:
    """Point ``aws_default`` (what the hooks use) at the sandbox, and put the old value back after."""
    env = sandbox.connection_env("aws_default")
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def lego_spec(sandbox: Sandbox, release: str = "v2", **overrides: Any) -> dict[str, Any]:
    """The lego-api spec as dags/blue_green_deploy.py writes it, without migrations (not measured here)."""
    from bluegreen_provider.sandbox.world import API_NAME, FUNCTIONS, RECORD_NAME, ZONE_NAME, alias_name

    zip_file = str(sandbox.release_zip(release))
    spec: dict[str, Any] = {
        "service": API_NAME,
        "hosted_zone": ZONE_NAME,
        "record_name": RECORD_NAME,
        "functions": [{"name": name, "zip_file": zip_file} for name in FUNCTIONS],
        "slots": {
            slot: {
                "set_identifier": slot,
                "alias": alias_name(slot),
                "health_url": f"{sandbox.http_url}/{slot}/health",
                "health_check_fqdn": f"{alias_name(slot)}.execute-api.us-east-1.amazonaws.com",
                "api_name": f"{API_NAME}-{slot}",
            }
            for slot in ("blue", "green")
        },
        "alarms": list(LEGO_ALARMS),
    }
    spec.update(overrides)
    return spec


def set_weights(sandbox: Sandbox, blue: int, green: int) -> None:
    """One UPSERT batch for both weighted sets, as the deployment's shift does."""
    from bluegreen_provider.sandbox.world import weighted_record

    sandbox.clients()("route53").change_resource_record_sets(
        HostedZoneId=sandbox.hosted_zone_id,
        ChangeBatch={
            "Comment": "bench",
            "Changes": [
                {"Action": "UPSERT", "ResourceRecordSet": weighted_record("blue", blue)},
                {"Action": "UPSERT", "ResourceRecordSet": weighted_record("green", green)},
            ],
        },
    )


def publish_release(sandbox: Sandbox, release: str) -> dict[str, str]:
    """Upload release ``release`` to every function and publish it; function -> new version."""
    from bluegreen_provider.sandbox.world import FUNCTIONS

    lambda_ = sandbox.clients()("lambda")
    code = sandbox.release_zip(release).read_bytes()
    versions = {}
    for function in FUNCTIONS:
        lambda_.update_function_code(FunctionName=function, ZipFile=code)
        versions[function] = lambda_.publish_version(FunctionName=function, Description=f"release {release}")["Version"]
    return versions


def point_slot(sandbox: Sandbox, slot: str, versions: dict[str, str]) -> None:
    """Move the slot's alias of each function to the given version."""
    from bluegreen_provider.sandbox.world import alias_name

    lambda_ = sandbox.clients()("lambda")
    for function, version in versions.items():
        lambda_.update_alias(FunctionName=function, Name=alias_name(slot), FunctionVersion=version)


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until truthy; bounded by ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def wait_alarms_quiet(sandbox: Sandbox, timeout: float = 30.0) -> None:
    """Block until no seeded alarm is in ALARM, so a soak does not start on a stale alarm."""
    wait_until(lambda: "ALARM" not in sandbox.alarm_states().values(), timeout=timeout, what="alarms to leave ALARM")


def green_tally(sandbox: Sandbox) -> tuple[int, int, int]:
    """(requests, 5XX errors, Lambda function errors) the green slot has served since the sandbox started."""
    green = sandbox.stats()["green"]
    return int(green["requests"]), int(green["errors"]), int(green["function_errors"])


def lego_query(slot: str = "green", service: str | None = None) -> dict[str, Any]:
    """The error-rate query the soak builds for a slot of lego-api (or of ``service``).

    API Gateway ``Count``/``5XXError`` of the slot's API, as the example service configures it
    (``metrics_source: apigateway``): Lambda's ``Errors`` would miss the 500s a handler returns itself.
    """
    from bluegreen_provider.hooks.cloudwatch import ErrorRateQuery
    from bluegreen_provider.sandbox.world import API_NAME

    return ErrorRateQuery.api_gateway(f"{service or API_NAME}-{slot}").to_dict()


def log(message: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- soaks and rollbacks as the DAG runs them ------------------------------------------------------


def soak_trigger(
    soak_start: datetime,
    *,
    soak_seconds: float = 60.0,
    poll_interval: float = 1.0,
    min_requests: int = 20,
    alarms: Sequence[str] = LEGO_ALARMS,
    health_check_id: str | None = None,
    service: str | None = None,
) -> Any:
    """The trigger ErrorRateSensor defers to for the lego-api green soak at 10 %, with the spec's defaults.

    ``service`` names another service's APIs (``<service>-green`` / ``-blue``) for a soak of its own.

    Spec defaults: threshold 5 %, ``min_requests`` 20, CloudWatch period 60 s, window 300 s, live
    compared with a 1.5x margin. Only ``poll_interval`` differs from the shipped spec (30 s there), as
    the story's canary asks, and the lag is the fast sandbox's (0 s) so the soak ends at its clock.
    """
    from bluegreen_provider.hooks.cloudwatch import ErrorRateQuery
    from bluegreen_provider.soak import Soak, SoakRules, WatchedSlot
    from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

    def slot(name: str) -> WatchedSlot:
        return WatchedSlot(name, ErrorRateQuery.from_dict(lego_query(name, service)))

    soak = Soak(
        stage_pct=10,
        candidate=slot("green"),
        baseline=slot("blue"),
        rules=SoakRules(min_requests=min_requests, poll_interval=poll_interval, lag_seconds=0, alarms=tuple(alarms)),
        watch_from=soak_start,
        soak_seconds=soak_seconds,
        clock_start=soak_start,
        health_check_id=health_check_id,
    )
    return ErrorRateTrigger(soak=soak.to_dict(), mode="soak", aws_conn_id="aws_default")


async def first_event(trigger: Any, timeout: float) -> tuple[dict[str, Any], float]:
    """Run ``trigger.run()`` to its first event (as the triggerer does); (payload, monotonic time seen)."""
    import asyncio

    events = trigger.run()
    try:
        event = await asyncio.wait_for(events.__anext__(), timeout)
    finally:
        await events.aclose()
    return event.payload, time.monotonic()


def lego_plan(sandbox: Sandbox, spec: dict[str, Any], owner: str = OWNER) -> Any:
    """The plan the plan task would write mid-deployment: blue live, green the candidate."""
    from bluegreen_provider.plan import Plan
    from bluegreen_provider.sandbox.world import FUNCTIONS
    from bluegreen_provider.spec import DeploymentSpec

    return Plan(
        spec=DeploymentSpec.from_dict(spec),
        zone_id=sandbox.hosted_zone_id,
        live="blue",
        candidate="green",
        owner=owner,
        split_before={"blue": 100, "green": 0},
        live_versions=dict.fromkeys(FUNCTIONS, "1"),
        candidate_versions_before=dict.fromkeys(FUNCTIONS, "1"),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


_runs = itertools.count(1)


def new_owner() -> str:
    """The owner string of a new deployment run (a run rolled back by hand never shifts traffic again)."""
    return f"{OWNER}_{next(_runs)}"


def slot_serving(sandbox: Sandbox, slot: str) -> dict[str, str]:
    """Function -> version the slot's alias serves, read with the sandbox's own client."""
    from bluegreen_provider.sandbox.world import FUNCTIONS, alias_name

    lambda_ = sandbox.clients()("lambda")
    return {fn: lambda_.get_alias(FunctionName=fn, Name=alias_name(slot))["FunctionVersion"] for fn in FUNCTIONS}


def deploy_to(sandbox: Sandbox, plan: Any, owner: str, candidate_pct: int = 0, *, retention_seconds: int = 0) -> Any:
    """Take the service for ``owner`` and move the candidate to ``candidate_pct`` (untimed setup).

    The stages' own transitions: plan (acquire), deploy (record what the candidate serves), then the
    shifts 10 and ``candidate_pct``; 100 promotes, retaining the old live slot for ``retention_seconds``.
    The split must read 100 % on ``plan.live`` first. Returns the service's :class:`ServiceState`.
    """
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.state import ServiceState, acquire, record_release, shift

    svc = ServiceState(Route53Hook(aws_conn_id="aws_default"), plan.zone_id, plan.spec)
    state, _ = acquire(svc, owner, live_versions=slot_serving(sandbox, plan.live), run_is_active=lambda _: False)
    if state.live != plan.live:
        raise AssertionError(f"expected {plan.live} live, the state says {state.live}")
    candidate = slot_serving(sandbox, plan.candidate)
    record_release(svc, owner, candidate)
    previous = 0
    for pct in sorted({p for p in (10, candidate_pct) if 0 < p <= candidate_pct}):
        shift(
            svc,
            owner,
            pct,
            previous_pct=previous,
            serving=candidate,
            retention_seconds=retention_seconds if pct == 100 else 0,
        )
        previous = pct
    return svc


def failure_context(plan: Any, owner: str, task_id: str = "soak_10") -> dict[str, Any]:
    """The slice of a task's context ``rollback_on_failure`` reads: the task, its XCom plan and the run."""
    from types import SimpleNamespace

    raw = plan.to_dict()
    dag_id, _, run_id = owner.partition("/")
    return {
        "task": SimpleNamespace(plan_task_id="plan", aws_conn_id="aws_default", region_name=None),
        "ti": SimpleNamespace(task_id=task_id, xcom_pull=lambda task_ids=None, **_: raw),
        "dag_run": SimpleNamespace(dag_id=dag_id, run_id=run_id),
        "exception": "bench: canary breached",
    }

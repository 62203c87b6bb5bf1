"""Worker slots and overhead of one whole deployment under a real scheduler, and its AWS API calls.

A real Airflow (``bluegreen_provider.stack.AirflowStack`` via ``tests/e2e/airflow_world.py``: the
sandbox, two PostgreSQL databases, api-server, scheduler, dag-processor, triggerer, LocalExecutor)
runs ``blue_green_deploy`` for release v2 with short timings (soaks, retention, a 1 s metrics period
with 1 s lag, poll 2 s); the approval is answered over REST as soon as it waits. The bench samples
every task instance's state over the REST API (every ``SAMPLE_S``) and reads its start/end dates.

* **worker-slot occupancy**: seconds tasks spent ``running`` (on a worker slot), i.e. each task's
  start -> end minus the sampled periods it spent ``deferred`` / ``awaiting_input`` (on the triggerer
  or parked), summed over tasks, against the run's wall time.
* **whole-DAG overhead**: run wall time minus the waits the configuration asks for (the soaks, their
  settle wait of period + lag, the retention, and the approval's time awaiting the person).
* **AWS API calls** of the deployment by operation: every Airflow process loads
  ``bench/count_calls/sitecustomize.py``, which counts calls at botocore's call site.

One deployment per run (starting Airflow takes a minute or two on this host): the spread is over
tasks, not repetitions.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import REPO, BenchResult, fmt, log

NAME = "worker_slots"
DEFAULT_REPS = 1
QUICK_REPS = 1
SAMPLE_S = 0.5
PARKED = ("deferred", "awaiting_input", "up_for_reschedule")
STORY_WAITS_S = 300 + 600 + 2 * (60 + 120)  # the story's soaks and their settle waits at the spec's metrics


def _dt(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def _intervals(samples: list[tuple[float, str | None]], states: tuple[str, ...]) -> list[tuple[float, float]]:
    """Spans during which the sampled state was one of ``states`` (each sample stands for SAMPLE_S)."""
    spans: list[tuple[float, float]] = []
    start = None
    for at, state in samples:
        if state in states and start is None:
            start = at
        elif state not in states and start is not None:
            spans.append((start, at))
            start = None
    if start is not None:
        spans.append((start, samples[-1][0]))
    return spans


def _deploy(world: Any, conf: dict[str, Any], timeout: float) -> dict[str, Any]:
    from tests.e2e.airflow_world import DAG_ID, parking_exit_processed

    run_id = f"bench_{uuid.uuid4().hex[:6]}"
    world.airflow.api(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf}
    )
    samples: dict[str, list[tuple[float, str | None]]] = {}
    approved_at, approved_try = None, None
    deadline = time.monotonic() + timeout
    state = "queued"
    while time.monotonic() < deadline:
        now = time.time()
        try:
            tis = world.task_instances(run_id)
        except (OSError, TimeoutError) as err:  # a slow api-server on a busy host: skip this sample
            log(f"{NAME}: sample skipped ({err})")
            time.sleep(SAMPLE_S)
            continue
        for task, ti in tis.items():
            samples.setdefault(task, []).append((now, ti["state"]))
        approval = tis.get("approval", {})
        # Answer only once the worker's exit from parking is processed: an answer before it meets a stale
        # "success" of the same try, which the scheduler fails as killed externally (see stack.py).
        if (
            approval.get("state") == "awaiting_input"
            and approval.get("try_number") != approved_try
            and parking_exit_processed(world, run_id, "approval")
        ):
            approved_try = approval.get("try_number")
            path = f"{world.run_path(run_id)}/taskInstances/approval/-1/hitlDetails"
            world.airflow.api("PATCH", path, {"chosen_options": ["Approve"], "params_input": {}})
            approved_at = time.time()
        state = world.get(world.run_path(run_id))["state"]
        if state in ("success", "failed"):
            break
        time.sleep(SAMPLE_S)
    dag_run = world.get(world.run_path(run_id))
    return {
        "run_id": run_id,
        "state": state,
        "dag_run": dag_run,
        "task_instances": world.task_instances(run_id),
        "samples": samples,
        "approved_at": approved_at,
    }


def run(
    reps: int = DEFAULT_REPS,
    *,
    soak_seconds: float = 45.0,
    retention_seconds: int = 20,
    quick: bool = False,
) -> BenchResult:
    result = BenchResult(
        NAME,
        {
            "reps": reps,
            "soak_10_s": soak_seconds,
            "soak_50_s": soak_seconds,
            "retention_s": retention_seconds,
            "poll_s": 2,
            "metrics_period_s": 1,
            "metrics_lag_s": 1,
            "executor": "LocalExecutor",
            "sample_every_s": SAMPLE_S,
        },
    )
    if quick:
        result.details = {"skipped": "needs a real Airflow, which takes 1-2 minutes to start: not in --quick"}
        result.notes.append("Not run in --quick: a real Airflow takes 1-2 minutes to start on this host.")
        return result
    from tests.e2e.airflow_world import FUNCTIONS, airflow_world, dag_ready

    settle = 1 + 1
    conf = {
        "steps": [
            {"weight": 10, "soak_seconds": soak_seconds},
            {"weight": 50, "soak_seconds": soak_seconds},
            {"weight": 100, "soak_seconds": 0},
        ],
        "poll_interval_seconds": 2,
        "min_requests": 8,
        "metrics_period_seconds": 1,
        "metrics_lag_seconds": 1,
        "approval_timeout_seconds": 300,
        "retention_seconds": retention_seconds,
    }
    deployments = []
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as tmp:
        calls_dir = Path(tmp) / "calls"
        calls_dir.mkdir()
        pythonpath = os.pathsep.join(
            p for p in (str(REPO / "bench" / "count_calls"), str(REPO), os.environ.get("PYTHONPATH", "")) if p
        )
        started = time.monotonic()
        with airflow_world(
            Path(tmp),
            airflow_env={
                "PYTHONPATH": pythonpath,
                "BENCH_CALLS_DIR": str(calls_dir),
                # The bench runs at WARNING; the approval is answered once the scheduler's INFO line
                # says the parked worker's exit was handled.
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            },
        ) as world:
            log(f"{NAME}: Airflow up in {time.monotonic() - started:.0f} s")
            dag_ready(world)
            zip_file = str(world.sandbox.state_dir / "releases" / "v2.zip")
            for i in range(reps):
                for stale in calls_dir.iterdir():
                    stale.unlink()
                item = _deploy(world, {**conf, "functions": [{"name": f, "zip_file": zip_file} for f in FUNCTIONS]},
                               timeout=2 * soak_seconds + retention_seconds + 400)  # fmt: skip
                calls: Counter[str] = Counter()
                for path in calls_dir.glob("calls-*.txt"):
                    calls.update(line for line in path.read_text().splitlines() if line)
                item["api_calls"] = dict(sorted(calls.items()))
                deployments.append(item)
                log(f"{NAME}: deployment {i + 1}/{reps}: {item['state']}, {sum(calls.values())} AWS calls")
                if i + 1 < reps:  # the next run deploys over this one's release: roll forward again
                    time.sleep(1)
    with contextlib.suppress(Exception):
        from bench import dag_parse

        parse = dag_parse.run(3)
        result.details["dag_parse"] = [m.to_dict() for m in parse.metrics]
    item = deployments[0]
    run_start = _dt(item["dag_run"].get("start_date"))
    run_end = _dt(item["dag_run"].get("end_date"))
    wall = (run_end or time.time()) - (run_start or time.time())
    rows, occupancy_s, parked_total = [], 0.0, 0.0
    timeline: dict[str, list[tuple[float, float]]] = {}
    styles: dict[str, str] = {}
    order = sorted(item["task_instances"].values(), key=lambda ti: ti.get("start_date") or "9")
    for index, ti in enumerate(order):
        task = ti["task_id"]
        start, end = _dt(ti.get("start_date")), _dt(ti.get("end_date"))
        samples = item["samples"].get(task, [])
        parked = _intervals(samples, PARKED)
        parked_s = sum(b - a for a, b in parked)
        span = (end - start) if start and end else 0.0
        on_worker = max(0.0, span - parked_s)
        occupancy_s += on_worker
        parked_total += parked_s
        rows.append([task, ti["state"], span, parked_s, on_worker, ti.get("try_number")])
        y = float(len(order) - index)
        if start and end:
            timeline[f"task span #{task}"] = [(start - run_start, y), (end - run_start, y)]
            styles[f"task span #{task}"] = "#1f77b4"
        for j, (a, b) in enumerate(parked):
            key = f"deferred / awaiting input #{task}{j}"
            timeline[key] = [(a - run_start, y), (b - run_start, y)]
            styles[key] = "#ff7f0e"
    approval_wait = sum(b - a for a, b in _intervals(item["samples"].get("approval", []), ("awaiting_input",)))
    waits = 2 * soak_seconds + 2 * settle + retention_seconds
    overhead = wall - waits - approval_wait
    rows.append(["**all tasks**", item["state"], None, parked_total, occupancy_s, None])
    result.table(
        f"One deployment (run {item['state']}, wall {wall:.1f} s); seconds per task, sampled every {SAMPLE_S:g} s",
        ["task", "state", "start -> end", "deferred / awaiting input", "on a worker", "try"],
        rows,
    )
    share = 100 * occupancy_s / wall if wall else None
    story_share = 100 * occupancy_s / (wall - waits + STORY_WAITS_S) if wall else None
    result.table(
        "Occupancy and overhead",
        ["", "value"],
        [
            ["run wall time (s)", wall],
            ["configured waits: soaks + settle (period + lag) + retention (s)", waits],
            ["approval awaiting the person (answered at once, s)", approval_wait],
            ["whole-DAG overhead = wall - waits - approval (s)", overhead],
            ["overhead share of wall time (%)", 100 * overhead / wall if wall else None],
            ["seconds on a worker slot, all tasks", occupancy_s],
            ["worker-slot occupancy (% of wall)", share],
            ["same worker seconds with the story's soaks (5 + 10 min, 60 s period, 120 s lag), % of wall", story_share],
        ],
    )
    result.add("run wall time", "s", [wall])
    result.add("seconds on a worker slot", "s", [occupancy_s])
    result.add("whole-DAG overhead", "s", [overhead])
    result.goal(
        "worker-slot occupancy ≤ 5 % of the deployment's wall time (short timings)",
        5.0,
        share,
        "%",
        limit=f"each of the {len(order)} tasks holds a slot for its process start, imports and AWS calls "
        f"(median {fmt(sorted(r[4] for r in rows[:-1])[len(rows[:-1]) // 2])} s); the waits are off the worker. "
        f"With the story's soaks the same work is {fmt(story_share)} % of the run",
    )
    result.goal(
        "whole-DAG overhead ≤ 10 % of wall time",
        10.0,
        100 * overhead / wall if wall else None,
        "%",
        limit="scheduling hops between tasks (scheduler loop, executor, worker start) and each task's own "
        "work, against only ~2 minutes of configured waits",
    )
    api = item["api_calls"]
    result.table(
        "AWS API calls of the whole deployment, by operation (all Airflow processes)",
        ["operation", "calls"],
        [[op, n] for op, n in api.items()] + [["**total**", sum(api.values())]],
    )
    result.plots.append(
        {
            "file": "worker_slots.svg",
            "title": "Tasks of one deployment: start -> end (blue), deferred or awaiting input (orange)",
            "x_label": "seconds since the run started",
            "y_label": "task (first at the top)",
            "series": timeline,
            "styles": styles,
        }
    )
    for d in deployments:
        d.pop("samples")
    result.details["deployments"] = deployments
    result.notes.append(
        "Task spans come from the REST API's start/end dates; deferred / awaiting-input periods from "
        f"sampling every task's state every {SAMPLE_S:g} s (±{SAMPLE_S:g} s per transition)."
    )
    return result

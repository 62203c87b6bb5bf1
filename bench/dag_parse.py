"""How long the example DAG file takes to parse once Airflow is imported, and what it imports.

Each repetition is a fresh Python process (as a DAG processor's parse of a changed file is): it imports
``airflow.sdk`` untimed, then times ``runpy.run_path`` of ``dags/blue_green_deploy.py``. The goal is
0.3 s; the heavy modules (boto3, botocore, the PostgreSQL drivers) must not be imported at all, as
every hook is imported only when a stage runs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench import REPO, BenchResult, log, spread

NAME = "dag_parse"
DEFAULT_REPS = 7
QUICK_REPS = 3
GOAL_SECONDS = 0.3
HEAVY = ("boto3", "botocore", "psycopg", "psycopg2", "airflow.providers.amazon.aws.hooks.base_aws")

_PROBE = """
import json, runpy, sys, time
sys.path.insert(0, sys.argv[2])
import airflow.sdk
started = time.perf_counter()
runpy.run_path(sys.argv[1])
took = time.perf_counter() - started
print(json.dumps({"seconds": took, "heavy": [m for m in sys.argv[3].split(",") if m in sys.modules]}))
"""


def parse_once(dag_file: Path) -> dict[str, object]:
    """One parse in a fresh interpreter: its seconds and the heavy modules it imported."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(dag_file), str(dag_file.parent), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
        cwd=dag_file.parent,  # nothing on the path but what an installed Airflow has, and the DAG folder
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(reps: int = DEFAULT_REPS, *, dag_file: str = str(REPO / "dags" / "blue_green_deploy.py")) -> BenchResult:
    result = BenchResult(NAME, {"reps": reps, "dag_file": str(Path(dag_file).relative_to(REPO))})
    seconds, heavy = [], set()
    for i in range(reps):
        found = parse_once(Path(dag_file))
        seconds.append(float(found["seconds"]))
        heavy.update(found["heavy"])
        log(f"{NAME}: rep {i + 1}/{reps}: {seconds[-1]:.3f} s")
    result.add("parse after airflow.sdk is imported", "s", seconds, note="goal <= 0.3 s")
    result.details = {"heavy_modules_imported": sorted(heavy)}
    result.table(
        "Parse of the example DAG file in a fresh interpreter (airflow.sdk imported first, untimed)",
        ["repetitions", "seconds, median [min-max]", "heavy modules imported"],
        [[reps, spread(seconds), ", ".join(sorted(heavy)) or "none"]],
    )
    result.goal(
        f"DAG parse ≤ {GOAL_SECONDS:g} s (median)",
        GOAL_SECONDS,
        statistics.median(seconds),
        "s",
        limit="importing the provider's DAG factory and spec modules; hooks (boto3, psycopg) load only when a "
        "stage first uses them",
    )
    return result

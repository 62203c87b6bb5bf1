"""Parsing the deployment DAG imports no AWS SDK and no database driver: hooks load when a stage runs.

The time it takes is measured in ``bench/dag_parse.py``; here, what it must not import.
"""

from __future__ import annotations

from pathlib import Path

from bench.dag_parse import HEAVY, parse_once

REPO = Path(__file__).resolve().parents[3]


def test_the_example_dag_parses_without_boto3_botocore_or_a_postgres_driver() -> None:
    found = parse_once(REPO / "dags" / "blue_green_deploy.py")
    assert found["heavy"] == [], f"imported at parse time: {found['heavy']} (of {HEAVY})"


def test_the_shipped_example_dag_parses_without_them_too() -> None:
    found = parse_once(REPO / "bluegreen_provider" / "example_dags" / "blue_green_deploy.py")
    assert found["heavy"] == [], f"imported at parse time: {found['heavy']} (of {HEAVY})"

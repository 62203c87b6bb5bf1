"""``python -m bench --quick`` runs every benchmark and writes results that make sense (not timing goals)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, float]:
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((out / "results.json").read_text()), out, took


def test_every_benchmark_is_in_the_results_and_the_report(quick: tuple[dict, Path, float]) -> None:
    from bench.__main__ import BENCHMARKS

    data, out, took = quick
    assert set(data["benchmarks"]) == set(BENCHMARKS)
    report = (out / "RESULTS.md").read_text()
    for name in BENCHMARKS:
        assert f"## {name}" in report
        entry = data["benchmarks"][name]
        assert entry["machine"]["load_avg"] and entry["machine"]["cpus"]
        for plot in entry["plot_files"]:
            assert ET.parse(out / plot).getroot().tag.endswith("svg"), plot
    print(f"python -m bench --quick took {took:.0f} s")  # a timing, not a goal the test holds


def test_blast_radius_reports_every_repetition_of_both_sides(quick: tuple[dict, Path, float]) -> None:
    runs = quick[0]["benchmarks"]["blast_radius"]["details"]["runs"]
    assert sorted(r["side"] for r in runs) == ["bluegreen", "story"]
    for r in runs:
        assert 0 <= r["failed"] <= r["green_requests"] and r["green_requests"] > 0, r
    ours = next(r for r in runs if r["side"] == "bluegreen")
    assert ours["rolled_back"] and ours["failed"] > 0, ours  # the bad release failed requests, then was rolled back
    assert "blast_radius.svg" in quick[0]["benchmarks"]["blast_radius"]["plot_files"]


def test_rollback_visibility_times_are_in_order(quick: tuple[dict, Path, float]) -> None:
    entry = quick[0]["benchmarks"]["rollback_visibility"]
    assert set(entry["details"]["runs"]) == {"0", "60", "300"}
    propagation = entry["params"]["propagation_s"]
    for items in entry["details"]["runs"].values():
        for r in items:
            assert r["rule"] == "alarm"
            assert 0 < r["visible_to_submitted_s"] < r["visible_to_insync_s"]
            assert r["submitted_to_insync_s"] == pytest.approx(propagation, abs=0.05)
            assert r["visible_to_last_green_s"] >= 0


def test_rollback_storm_left_no_service_split(quick: tuple[dict, Path, float]) -> None:
    entry = quick[0]["benchmarks"]["rollback_storm"]
    for r in entry["details"]["runs"]:
        assert r["left_split"] == [] and r["not_rolled_back"] == 0, r
        assert r["last_insync_s"] is not None and r["last_insync_s"] >= r["last_submitted_s"] > 0


def test_api_cost_counts_the_calls_of_each_step(quick: tuple[dict, Path, float]) -> None:
    calls = quick[0]["benchmarks"]["api_cost"]["details"]["calls"]
    rollback = calls["rollback (failure callback)"][0]
    assert rollback.get("route53.ChangeResourceRecordSets") == 1, rollback
    assert calls["soak poll"][0].get("cloudwatch.GetMetricData") == 1
    assert calls["plan"][0].get("route53.ChangeResourceRecordSets") == 1  # the plan takes the lock


def test_trigger_footprint_measured_both_counts(quick: tuple[dict, Path, float]) -> None:
    children = quick[0]["benchmarks"]["trigger_footprint"]["details"]["children"]
    assert set(children) == {"10@5", "50@5"}
    for reports in children.values():
        r = reports[-1]
        assert r["poll_lag_s"]["n"] >= r["n"] and r["cpu_s_per_poll"] > 0 and r["rss_peak_mib"] > 0
        assert r["events"] == [], r["events"]  # no soak ended or breached during the window


def test_dag_parse_and_worker_slots(quick: tuple[dict, Path, float]) -> None:
    benchmarks = quick[0]["benchmarks"]
    parse = benchmarks["dag_parse"]
    assert 0 < parse["metrics"][0]["median"] < 5
    assert parse["details"]["heavy_modules_imported"] == []
    assert "skipped" in benchmarks["worker_slots"]["details"]  # a real Airflow is not started in --quick

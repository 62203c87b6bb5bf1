"""A soak's chart, as drawn on the run page: each kept sample where its time and rate put it, the threshold
line at the threshold, and the candidate's share of traffic stepping up at INSYNC.

The expected coordinates are worked out here from the plotting area and the rate axis the SVG
declares (``rect.rate-area``, ``data-max-pct``), so the tests hold whatever the layout's sizes are.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from bs4 import BeautifulSoup

from bluegreen_provider.ui.pages import run_page

T0 = datetime(2026, 11, 26, 10, 4, 12, tzinfo=UTC)
INSYNC = T0 + timedelta(seconds=4)
END = INSYNC + timedelta(seconds=300)
RATES = [(0.0, 0.1), (0.8, 0.2), (2.5, 0.3), (None, 0.2), (1.2, None), (0.4, 0.1)]  # candidate, live


def samples(rates=RATES):
    every = (END - T0) / len(rates)
    return [
        {
            "t": (T0 + every * (i + 1)).isoformat(),
            "requests": 0 if c is None else 100,
            "errors": 0 if c is None else c,
            "rate_pct": c,
            "live_rate_pct": live,
        }
        for i, (c, live) in enumerate(rates)
    ]


def run(soak: dict, *, threshold=5, soak_state="success", verdict=None) -> dict:
    stage = {"state": "success", "ran": True, "duration_s": 1, "running": False, "map_index": -1, "try_number": 1}
    stage.update(verdict=None, sentence="", text="", said_at=None, notes=[], end_date=None)
    plan = {
        "live": "blue",
        "candidate": "green",
        "split_before": {"blue": 100, "green": 0},
        "live_versions": {},
        "spec": {
            "error_rate_threshold_pct": threshold,
            "slots": {"blue": {"set_identifier": "blue"}, "green": {"set_identifier": "green"}},
        },
    }
    shift = {
        "split": {"blue": 90, "green": 10},
        "candidate_pct": 10,
        "submitted_at": T0.isoformat(),
        "insync_at": INSYNC.isoformat(),
    }
    return {
        "dag_id": "blue_green_deploy",
        "run_id": "manual__1",
        "state": "success",
        "start_date": (T0 - timedelta(minutes=2)).isoformat(),
        "end_date": (END + timedelta(minutes=1)).isoformat(),
        "duration_s": 500,
        "stages": [
            {**stage, "task_id": "plan", "summary": plan, "start_date": (T0 - timedelta(minutes=2)).isoformat()},
            {**stage, "task_id": "shift_10", "summary": shift, "start_date": T0.isoformat()},
            {
                **stage,
                "task_id": "soak_10",
                "summary": soak,
                "verdict": verdict,
                "state": soak_state,
                "start_date": INSYNC.isoformat(),
            },
        ],
    }


def soak_summary(kept=None) -> dict:
    return {
        "stage_pct": 10,
        "requests": 500,
        "errors": 5,
        "rate_pct": 1.0,
        "samples": samples() if kept is None else kept,
        "watched_from": T0.isoformat(),
        "started_at": INSYNC.isoformat(),
        "ended_at": END.isoformat(),
        "live": {"slot": "blue", "requests": 4500, "errors": 9, "rate_pct": 0.2},
    }


def chart_of(page_run: dict):
    page = BeautifulSoup(run_page(page_run, base="/bluegreen", airflow_root=""), "html.parser")
    soak = next(li for li in page.select("li.stage") if li["data-task-id"] == "soak_10")
    return soak.select_one("figure.soak-chart svg")


def area(svg, name: str) -> tuple[float, float, float, float]:
    rect = svg.select_one(f"rect.{name}")
    return tuple(float(rect[k]) for k in ("x", "y", "width", "height"))


def points(polyline) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in polyline["points"].split()]


def expected_point(svg, sample: dict, key: str) -> tuple[float, float]:
    x, y, width, height = area(svg, "rate-area")
    top = float(svg["data-max-pct"])
    moment = datetime.fromisoformat(sample["t"])
    return (
        pytest.approx(x + width * (moment - T0).total_seconds() / (END - T0).total_seconds(), abs=0.01),
        pytest.approx(y + height - height * sample[key] / top, abs=0.01),
    )


def test_the_candidate_line_has_one_point_per_sample_at_its_time_and_rate():
    svg = chart_of(run(soak_summary()))

    lines = svg.select("polyline.rate.candidate")
    with_rate = [s for s in samples() if s["rate_pct"] is not None]
    assert sum(len(points(line)) for line in lines) == len(with_rate) == 5
    # A sample without requests has no rate: the line breaks there instead of dropping to 0.
    assert [len(points(line)) for line in lines] == [3, 2]
    drawn = [p for line in lines for p in points(line)]
    assert drawn == [expected_point(svg, s, "rate_pct") for s in with_rate]
    assert drawn == sorted(drawn)  # left to right: in time order
    assert all(line["data-slot"] == "green" and "slot-green" in line["class"] for line in lines)
    assert len(svg.select("circle.dot.candidate")) == 5


def test_the_live_line_is_drawn_from_the_same_samples():
    svg = chart_of(run(soak_summary()))

    drawn = [p for line in svg.select("polyline.rate.live") for p in points(line)]
    with_rate = [s for s in samples() if s["live_rate_pct"] is not None]
    assert drawn == [expected_point(svg, s, "live_rate_pct") for s in with_rate]
    assert {line["data-slot"] for line in svg.select("polyline.rate.live")} == {"blue"}


@pytest.mark.parametrize("threshold", [5, 1, 0.5])
def test_the_threshold_line_is_at_the_threshold_rate_and_the_axis_holds_it_and_every_sample(threshold):
    svg = chart_of(run(soak_summary(), threshold=threshold))

    x, y, width, height = area(svg, "rate-area")
    top = float(svg["data-max-pct"])
    line = svg.select_one("line.threshold")
    assert float(line["y1"]) == float(line["y2"]) == pytest.approx(y + height - height * threshold / top, abs=0.01)
    assert (float(line["x1"]), float(line["x2"])) == (x, x + width)
    assert top >= threshold and top >= max(c for c, _ in RATES if c is not None)
    assert svg.select_one("text.threshold-label").get_text() == f"limit {threshold:g} %"
    assert svg["data-threshold-pct"] == str(threshold)


def test_the_share_of_traffic_steps_up_to_the_stage_at_insync():
    svg = chart_of(run(soak_summary()))

    x, y, width, height = area(svg, "share-area")
    rate_x, _, rate_width, _ = area(svg, "rate-area")
    insync_x = rate_x + rate_width * (INSYNC - T0).total_seconds() / (END - T0).total_seconds()
    bottom, at_10 = y + height, y + height - height * 10 / 100
    drawn = re.findall(r"([MHV])\s*([\d.]+)(?:,([\d.]+))?", svg.select_one("path.share")["d"])
    assert [(cmd, float(a), float(b) if b else None) for cmd, a, b in drawn] == [
        ("M", x, pytest.approx(bottom)),  # 0 % while Route53 propagates the change
        ("H", pytest.approx(insync_x, abs=0.01), None),
        ("V", pytest.approx(at_10), None),  # 10 % from INSYNC
        ("H", x + width, None),
    ]
    assert "green share of traffic: 0 % → 10 %" in svg.get_text()


def test_a_breached_soak_is_drawn_from_its_verdict():
    verdict = {
        "status": "breach",
        "rule": "error_rate",
        "message": "error rate 7.5 % > 5.0 % on green",
        "figures": {"threshold_pct": 5.0},
        "samples": samples([(0.5, 0.1), (7.5, 0.2)]),
        "started_at": INSYNC.isoformat(),
        "watched_from": T0.isoformat(),
        "detected_at": END.isoformat(),
    }
    svg = chart_of(run(None, soak_state="failed", verdict=verdict))

    assert [len(points(line)) for line in svg.select("polyline.rate.candidate")] == [2]
    top = float(svg["data-max-pct"])
    assert top >= 7.5
    _, y, _, height = area(svg, "rate-area")
    assert float(svg.select_one("line.threshold")["y1"]) == pytest.approx(y + height - height * 5 / top, abs=0.01)


def test_a_soak_that_kept_no_sample_has_no_chart():
    assert chart_of(run(soak_summary(kept=[]))) is None

"""What each page shows, decided here as plain data; the Jinja templates only lay it out (and escape it).

``services_page`` and ``run_page`` return the HTML of the two pages from what
:mod:`~bluegreen_provider.ui.services` and :mod:`~bluegreen_provider.ui.timeline` read; they touch
neither AWS nor the DB, so every wording and every number on a page can be checked from data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from bluegreen_provider.ui import text
from bluegreen_provider.ui.charts import SoakChart, soak_chart
from bluegreen_provider.ui.timeline import FINISHED_RUN_STATES, RunFacts, soak_limit

REFRESH_SECONDS = 10
PACKAGE = Path(__file__).resolve().parents[1]
# Colours come from the stylesheet by slot name; any other slot name gets the neutral one.
SLOT_CLASSES = {"blue": "slot-blue", "green": "slot-green"}
PHASE_CLASSES = {"held": "warn", "rolled_back": "warn", "aborted": "bad"}


@cache
def environment() -> Any:
    """The templates, autoescaped: every text from AWS, the DB or a DAG reaches the page escaped."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(PACKAGE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        clock=text.clock,
        when=text.when,
        duration=text.duration,
        pct=text.pct,
        segment=lambda value: quote(str(value), safe=""),
    )
    return env


def render(template: str, **context: Any) -> str:
    return (
        environment()
        .get_template(template)
        .render(refresh_seconds=REFRESH_SECONDS, slot_classes=SLOT_CLASSES, **context)
    )


# -- the services overview --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One slot's part of the split bar."""

    slot: str
    weight: int
    pct: float
    css: str

    @property
    def label(self) -> str:
        return f"{self.slot} {text.pct(round(self.pct))}"


def split_cells(split: Mapping[str, Any]) -> list[Cell]:
    """The bar's cells, one per slot in name order (a slot at 0 % has a cell of no width)."""
    weights = {slot: max(0, int(w)) for slot, w in split.items()}
    total = sum(weights.values())
    return [
        Cell(slot, weight, 100.0 * weight / total if total else 0.0, SLOT_CLASSES.get(slot, "slot-other"))
        for slot, weight in sorted(weights.items())
    ]


def badge(entry: Mapping[str, Any]) -> tuple[str, str]:
    """The card's headline (where traffic goes) and its style."""
    if entry.get("error"):
        return "STATUS UNAVAILABLE", "bad"
    split = entry.get("split") or {}
    live = entry.get("live")
    if live:
        return f"{live} live · 100 %", SLOT_CLASSES.get(live, "slot-other")
    if sum(1 for w in split.values() if w > 0) > 1:
        return f"SPLIT {text.split(split)}", "split"
    return "NO TRAFFIC: every weight is 0", "bad"


def _owner_link(owner: str | None) -> tuple[str, str] | None:
    dag_id, _, run_id = str(owner or "").partition("/")
    return (dag_id, run_id) if dag_id and run_id else None


def service_card(entry: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Everything one service's card shows, worded."""
    headline, css = badge(entry)
    deployment = entry.get("deployment") or None
    retention = entry.get("retention") or None
    until = text.moment(retention.get("until")) if retention else None
    lock = entry.get("lock") or None
    aliases: Mapping[str, Mapping[str, Any]] = entry.get("aliases") or {}
    slots = sorted({slot for by_slot in aliases.values() for slot in by_slot})
    return {
        "entry": entry,
        "headline": headline,
        "badge_class": css,
        "cells": split_cells(entry.get("split") or {}) if not entry.get("error") else [],
        "weights": text.split(entry.get("split")),
        "phase_class": PHASE_CLASSES.get(str((deployment or {}).get("phase")), ""),
        "deployment": deployment,
        "lock": lock,
        "lock_run": _owner_link(lock.get("owner")) if lock else None,
        "retention": retention,
        "retention_left": (
            None
            if until is None
            else (f"in {text.duration((until - now).total_seconds())}" if until > now else "expired")
        ),
        "alias_slots": slots,
        "aliases": [(fn, [by_slot.get(s) for s in slots]) for fn, by_slot in sorted(aliases.items())],
    }


def services_page(
    entries: Sequence[Mapping[str, Any]],
    *,
    base: str,
    airflow_root: str,
    now: datetime | None = None,
    only: Sequence[str] = (),
) -> str:
    """The overview; ``only``: the services it was asked for by name (it then links back to all)."""
    now = now or datetime.now(UTC)
    return render(
        "services.html",
        title="Blue/green deployments",
        cards=[service_card(e, now) for e in entries],
        base=base,
        airflow_root=airflow_root,
        now=now,
        only=list(only),
        only_query=urlencode([("service", name) for name in only]),
        refresh=True,
    )


# -- one run ----------------------------------------------------------------------------------------


def _track(stage: Mapping[str, Any], run: Mapping[str, Any], now: datetime) -> tuple[float, float] | None:
    """Where the stage sits within the run, in % of the run's span, like one row of a Gantt chart."""
    start, run_start = text.moment(stage.get("start_date")), text.moment(run.get("start_date"))
    if stage.get("duration_s") is None or start is None or run_start is None:
        return None
    run_end = text.moment(run.get("end_date")) or now
    span = max((run_end - run_start).total_seconds(), 1e-6)
    left = min(max(100 * (start - run_start).total_seconds() / span, 0.0), 100.0)
    width = min(max(100 * float(stage["duration_s"]) / span, 0.0), 100.0 - left)
    return round(left, 2), round(width, 2)


def stage_chart(stage: Mapping[str, Any], facts: RunFacts) -> SoakChart | None:
    """A soak's chart, from its summary or (a failed soak) from its verdict."""
    if not str(stage.get("task_id", "")).startswith("soak_"):
        return None
    summary = stage.get("summary") if isinstance(stage.get("summary"), Mapping) else None
    verdict = stage.get("verdict") if isinstance(stage.get("verdict"), Mapping) else None
    record = summary if summary and summary.get("samples") else verdict
    if not record:
        return None
    live = (summary or {}).get("live") if isinstance((summary or {}).get("live"), Mapping) else None
    return soak_chart(
        stage["task_id"],
        record,
        threshold_pct=soak_limit(summary, verdict, facts),
        candidate=facts.candidate,
        live=(live or {}).get("slot") or facts.live,
        start_share=facts.start_share,
        share_changes=facts.share_changes,
    )


def run_page(run: Mapping[str, Any], *, base: str, airflow_root: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    facts = RunFacts.from_stages(run["stages"])
    rows = [
        {
            "stage": stage,
            "state": stage.get("state") or "none",
            "track": _track(stage, run, now),
            "chart": stage_chart(stage, facts),
        }
        for stage in run["stages"]
    ]
    return render(
        "run.html",
        title=f"{run['dag_id']} / {run['run_id']}",
        run=run,
        rows=rows,
        base=base,
        airflow_root=airflow_root,
        refresh=run.get("state") not in FINISHED_RUN_STATES,
    )


def error_page(title: str, message: str, *, base: str) -> str:
    return render("error.html", title=title, message=message, base=base, refresh=True)

"""The reliability suite's bookkeeping: every chaos case's category and outcome, written to RESULTS.md.

A chaos test names its category with ``@pytest.mark.chaos("aws faults")`` (or a module-level
``pytestmark``; without one the module name is used: ``test_bad_inputs.py`` → "bad inputs"). It may
report what it saw through two fixtures, counted per category in the table:

- ``report_split(split, steps, candidate=None)``: a split read back from Route53 (slot → weight).
  It is *stray* when it is neither one of the declared steps (the candidate's share, in percent) nor
  100/0 on one slot; returns whether it was.
- ``report_lost_deployment(detail)``: a deployment the system lost track of (no state, no owner,
  traffic nobody can account for).

``aws_state()`` is every piece of moto state the stages could touch, as bytes to compare exactly.

Tests marked ``@pytest.mark.slow`` run only when pytest is pointed at this folder (``make chaos``),
not in the whole-suite run of ``make test``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

CHAOS_DIR = Path(__file__).resolve().parent
RESULTS_FILE = CHAOS_DIR / "RESULTS.md"


@dataclass
class CaseRecord:
    """What one chaos case did: its outcome and the counts it reported."""

    category: str
    outcome: str = "passed"
    seconds: float = 0.0
    lost_deployments: list[str] = field(default_factory=list)
    stray_splits: list[str] = field(default_factory=list)


_RECORDS = pytest.StashKey[dict[str, CaseRecord]]()
_SLOW_LEFT_OUT = pytest.StashKey[int]()
_RECORD = pytest.StashKey[CaseRecord]()


# -- selection ------------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    # The chaos and slow markers are declared in pyproject.toml.
    config.stash[_RECORDS] = {}
    config.stash[_SLOW_LEFT_OUT] = 0


def _in_chaos_dir(path: Path) -> bool:
    return path.resolve().is_relative_to(CHAOS_DIR)


def _targets_chaos_only(config: pytest.Config) -> bool:
    """Whether pytest was pointed at this folder (or files in it), not at the whole suite."""
    paths = [Path(str(arg).split("::", 1)[0]) for arg in config.args]
    return bool(paths) and all(_in_chaos_dir(p if p.is_absolute() else config.invocation_params.dir / p) for p in paths)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave slow chaos cases out of a whole-suite run; `pytest tests/chaos` runs them all."""
    if _targets_chaos_only(config):
        return
    slow = [i for i in items if _in_chaos_dir(i.path) and i.get_closest_marker("slow") is not None]
    if slow:
        config.stash[_SLOW_LEFT_OUT] = len(slow)
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if i not in slow]


# -- recording ------------------------------------------------------------------------------------
def _category(item: pytest.Item) -> str:
    marker = item.get_closest_marker("chaos")
    if marker is not None and marker.args:
        return str(marker.args[0])
    return item.path.stem.removeprefix("test_").replace("_", " ")


def _record(item: pytest.Item) -> CaseRecord:
    if _RECORD not in item.stash:
        item.stash[_RECORD] = CaseRecord(_category(item))
        item.config.stash[_RECORDS][item.nodeid] = item.stash[_RECORD]
    return item.stash[_RECORD]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if _in_chaos_dir(item.path):
        record = _record(item)
        record.seconds += report.duration
        if report.failed:
            record.outcome = "failed"
        elif report.skipped and record.outcome != "failed":
            record.outcome = "skipped"
    return report


def is_stray_split(split: Mapping[str, int], steps: Sequence[int], candidate: str | None = None) -> bool:
    """A split no deployment declares: not 100/0 on one slot, and no slot (or not ``candidate``)
    holding one of the declared step shares. Weights are read as shares of their total."""
    total = sum(split.values())
    if total <= 0:
        return True  # no slot takes traffic
    shares = {slot: 100 * weight / total for slot, weight in split.items()}
    if any(share == 100 for share in shares.values()):
        return False
    holders = [candidate] if candidate is not None else list(shares)
    return not any(shares.get(slot) in {float(s) for s in steps} for slot in holders)


@pytest.fixture
def report_split(request: pytest.FixtureRequest) -> Callable[..., bool]:
    """``report_split(split, steps, candidate=None)``: count ``split`` in RESULTS.md if it is stray."""
    record = _record(request.node)

    def report(split: Mapping[str, int], steps: Sequence[int], candidate: str | None = None) -> bool:
        stray = is_stray_split(split, steps, candidate)
        if stray:
            shown = " / ".join(f"{slot} {weight}" for slot, weight in sorted(split.items()))
            record.stray_splits.append(f"{shown} (declared steps {list(steps)})")
        return stray

    return report


@pytest.fixture
def report_lost_deployment(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report_lost_deployment(detail)``: count a deployment the system lost track of in RESULTS.md."""
    record = _record(request.node)
    return record.lost_deployments.append


# -- the moto state, to compare exactly -------------------------------------------------------------
@pytest.fixture(scope="session")
def aws_state() -> Callable[[], bytes]:
    """``aws_state()``: the whole moto state the stages could change, as bytes (compare before/after)."""
    # Imported here: the bookkeeping above must load without the e2e helpers (its own tests copy it).
    from tests.e2e.aws_state import read_aws_state

    return read_aws_state


# -- the table -----------------------------------------------------------------------------------
def _machine() -> str:
    host = platform.node() or "unknown host"
    return f"{host}: {platform.platform()}, {os.cpu_count() or 0} CPUs, Python {platform.python_version()}"


def results_markdown(records: Mapping[str, CaseRecord], *, run: str, slow_left_out: int) -> str:
    """RESULTS.md: one row per category, the total, then what failed or went astray, case by case."""
    categories: dict[str, list[CaseRecord]] = {}
    for record in records.values():
        categories.setdefault(record.category, []).append(record)

    def row(name: str, rows: list[CaseRecord]) -> str:
        passed = sum(r.outcome == "passed" for r in rows)
        failed = sum(r.outcome == "failed" for r in rows)
        lost = sum(len(r.lost_deployments) for r in rows)
        stray = sum(len(r.stray_splits) for r in rows)
        return f"| {name} | {len(rows)} | {passed} | {failed} | {lost} | {stray} |"

    seconds = sum(r.seconds for r in records.values())
    scope = f"{len(records)} cases ran"
    if slow_left_out:
        scope += f", {slow_left_out} slow left out (`make chaos` runs them)"
    lines = [
        "# Chaos results",
        "",
        "Written by `tests/chaos/conftest.py` at the end of `make chaos` (every chaos case; `make test`",
        "runs the fast subset and leaves this file alone).",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {_machine()}",
        f"- run: `{run}`: {scope}; the cases took {seconds:.1f} s",
        "",
        "| category | cases | passed | failed | lost deployments | stray splits |",
        "|---|---|---|---|---|---|",
        *(row(name, rows) for name, rows in sorted(categories.items())),
        row("**total**", list(records.values())),
    ]
    skipped = [nodeid for nodeid, r in records.items() if r.outcome == "skipped"]
    if skipped:
        lines += ["", f"Skipped ({len(skipped)}, counted in cases only): " + ", ".join(f"`{n}`" for n in skipped)]
    details = [
        ("Failed", [(n, "") for n, r in records.items() if r.outcome == "failed"]),
        ("Lost deployments", [(n, d) for n, r in records.items() for d in r.lost_deployments]),
        ("Stray splits", [(n, d) for n, r in records.items() for d in r.stray_splits]),
    ]
    for title, found in details:
        if found:
            lines += ["", f"{title}:", "", *(f"- `{n}`" + (f": {d}" if d else "") for n, d in found)]
    return "\n".join(lines) + "\n"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write RESULTS.md for ``make chaos`` (BLUEGREEN_CHAOS_RESULTS=1): the table is the whole suite's,
    so ``make test`` (the fast cases) and single runs leave the committed one alone."""
    records = session.config.stash.get(_RECORDS, {})
    if not records or os.environ.get("BLUEGREEN_CHAOS_RESULTS") != "1":
        return
    args = " ".join(session.config.invocation_params.args)
    text = results_markdown(
        records,
        run=f"pytest {args}".strip(),
        slow_left_out=session.config.stash.get(_SLOW_LEFT_OUT, 0),
    )
    partial = RESULTS_FILE.with_suffix(".md.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(RESULTS_FILE)

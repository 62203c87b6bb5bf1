"""The chaos suite's bookkeeping (tests/chaos/conftest.py): stray splits, slow cases, RESULTS.md.

A small chaos folder is built in a temporary directory around a copy of the real conftest and run
by pytest in a subprocess, pointed at the folder or at its parent (the whole-suite run), with or
without ``make chaos``'s BLUEGREEN_CHAOS_RESULTS=1, and the RESULTS.md each run writes is read back.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[2] / "chaos" / "conftest.py"


def _bookkeeping():
    """tests/chaos/conftest.py as a plain module (its dataclasses need it in sys.modules)."""
    name = "chaos_bookkeeping"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, CONFTEST)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.mark.parametrize(
    ("split", "steps", "candidate", "stray"),
    [
        ({"blue": 90, "green": 10}, [10, 50, 100], None, False),
        ({"blue": 10, "green": 90}, [10, 50, 100], None, False),  # either colour may be the candidate
        ({"blue": 10, "green": 90}, [10, 50, 100], "green", True),
        ({"blue": 50, "green": 50}, [10, 50, 100], "green", False),
        ({"blue": 100, "green": 0}, [10, 50, 100], "green", False),
        ({"blue": 0, "green": 100}, [5, 25, 100], "green", False),
        ({"blue": 70, "green": 30}, [10, 50, 100], None, True),
        ({"blue": 0, "green": 0}, [10, 50, 100], None, True),
        ({"blue": 9, "green": 1}, [10, 50, 100], "green", False),  # weights are read as shares
    ],
)
def test_a_split_is_stray_unless_a_declared_step_or_all_on_one_slot(split, steps, candidate, stray):
    assert _bookkeeping().is_stray_split(split, steps, candidate) is stray


CASES = """
import pytest

pytestmark = pytest.mark.chaos("aws faults")


def test_declared_split(report_split):
    assert not report_split({"blue": 90, "green": 10}, [10, 50, 100])


def test_stray_split(report_split):
    assert report_split({"blue": 70, "green": 30}, [10, 50, 100])


def test_lost_deployment(report_lost_deployment):
    report_lost_deployment("state record gone after a throttled batch")


def test_failing():
    assert False


@pytest.mark.slow
def test_slow():
    pass
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    chaos = tmp_path / "tests" / "chaos"
    chaos.mkdir(parents=True)
    shutil.copy(CONFTEST, chaos / "conftest.py")
    (chaos / "test_aws_faults.py").write_text(CASES)
    (chaos / "test_bad_inputs.py").write_text("def test_refused():\n    pass\n\n\ndef test_also_refused():\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    chaos(category): c\n    slow: s\n")
    return tmp_path


def run_pytest(root: Path, *args: str, table: bool = True) -> subprocess.CompletedProcess[str]:
    """pytest in ``root``; ``table``: as ``make chaos`` runs it (BLUEGREEN_CHAOS_RESULTS=1)."""
    env = {k: v for k, v in os.environ.items() if k != "BLUEGREEN_CHAOS_RESULTS"}
    if table:
        env["BLUEGREEN_CHAOS_RESULTS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(root), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pointed_at_the_folder_every_case_runs_and_the_table_counts_them(suite):
    done = run_pytest(suite, "tests/chaos")
    assert "1 failed, 6 passed" in done.stdout, done.stdout + done.stderr
    results = (suite / "tests" / "chaos" / "RESULTS.md").read_text()
    assert "| aws faults | 5 | 4 | 1 | 1 | 1 |" in results, results
    assert "| bad inputs | 2 | 2 | 0 | 0 | 0 |" in results, results
    assert "| **total** | 7 | 6 | 1 | 1 | 1 |" in results, results
    assert "`pytest -q -p no:cacheprovider --rootdir" in results and "tests/chaos`: 7 cases ran;" in results
    assert "- machine: " in results and "- date: " in results
    assert "test_aws_faults.py::test_failing`" in results
    assert "test_aws_faults.py::test_stray_split`: blue 70 / green 30 (declared steps [10, 50, 100])" in results
    assert "test_aws_faults.py::test_lost_deployment`: state record gone after a throttled batch" in results


def test_the_whole_suite_run_leaves_slow_cases_out(suite):
    done = run_pytest(suite, "tests")
    assert "1 failed, 5 passed, 1 deselected" in done.stdout, done.stdout + done.stderr
    results = (suite / "tests" / "chaos" / "RESULTS.md").read_text()
    assert "| aws faults | 4 | 3 | 1 | 1 | 1 |" in results, results
    assert "6 cases ran, 1 slow left out (`make chaos` runs them)" in results


def test_no_table_outside_make_chaos(suite):
    done = run_pytest(suite, "tests/chaos", table=False)
    assert "1 failed, 6 passed" in done.stdout, done.stdout + done.stderr
    assert not (suite / "tests" / "chaos" / "RESULTS.md").exists()


def test_no_table_when_no_chaos_case_ran(suite):
    (suite / "tests" / "test_other.py").write_text("def test_other():\n    pass\n")
    done = run_pytest(suite, "tests", "-k", "other")
    assert "1 passed, 7 deselected" in done.stdout, done.stdout + done.stderr
    assert not (suite / "tests" / "chaos" / "RESULTS.md").exists()

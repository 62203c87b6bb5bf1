"""The package as a user installs it: a wheel in a fresh venv, used from a directory of its own.

The wheel is built from what the Dockerfile copies (pyproject.toml, README.md, the package and the
example's migrations), installed into a new venv that borrows this venv's dependencies through a
``.pth`` file (Airflow is not installed again) but not its editable install of this package: the
code that runs is the wheel's, which knows nothing of the checkout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from bluegreen_provider.sandbox.state import is_sandbox_daemon, read_state

REPO = Path(__file__).resolve().parents[3]
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the wheel; its other imports resolve from this venv's site-packages."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "bluegreen_provider", src / "bluegreen_provider", symlinks=True, ignore=skip)
    shutil.copytree(REPO / "dags" / "migrations", src / "dags" / "migrations", ignore=skip)
    # The build backend (setuptools, wheel) comes from the package index, as for any `pip install .`.
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", src, cwd=root)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("airflow_provider_bluegreen-*.whl")

    env_dir = root / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", env_dir, cwd=root)
    assert made.returncode == 0, made.stderr
    python = env_dir / "bin" / "python"
    installed = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=root
    )
    assert installed.returncode == 0, installed.stderr
    # A plain path line: the borrowed site-packages is appended to sys.path, its own .pth files (the
    # editable finder of this checkout among them) are not run.
    site = env_dir / "lib" / PY / "site-packages"
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """An empty working directory; a sandbox a failed test left there is killed."""
    yield tmp_path
    state = read_state(tmp_path / ".sandbox")
    if state is not None and is_sandbox_daemon(state.pid):
        os.kill(state.pid, signal.SIGKILL)


def _env(venv: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BLUEGREEN", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW_HOME=str(tmp_path / "airflow-home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        **extra,
    )
    return env


def test_the_installed_wheel_runs_the_cli_and_ships_the_example_dags(venv, work):
    env = _env(venv, work)
    python, bluegreen = venv / "bin" / "python", venv / "bin" / "bluegreen"
    where = _run(python, "-c", "import bluegreen_provider; print(bluegreen_provider.__file__)", cwd=work, env=env)
    assert where.returncode == 0, where.stderr
    package = Path(where.stdout.strip()).parent
    assert package.is_relative_to(venv), f"imported {package}, not the wheel's"
    examples = package / "example_dags"

    parsed = _run(
        python,
        "-c",
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(examples)!r})\n"
        "print(bag.import_errors or sorted(bag.dag_ids))\n"
        "import bluegreen_provider.example_dags.blue_green_deploy as dag_file\n"
        "from pathlib import Path\n"
        "print(sorted(p.name for p in Path(dag_file.LEGO_API['migrations']['folder']).glob('*.sql')))\n",
        cwd=work,
        env=env,
    )
    assert parsed.returncode == 0, parsed.stderr
    dag_ids, migrations = parsed.stdout.strip().splitlines()[-2:]
    assert dag_ids == "['blue_green_deploy', 'bluegreen_rollback']"
    assert migrations == str(sorted(p.name for p in (REPO / "dags" / "migrations" / "lego_api").glob("*.sql")))

    up = _run(bluegreen, "sandbox", "up", "--port", "0", "--rate", "5", "--flush", "1", cwd=work, env=env)
    assert up.returncode == 0, up.stderr
    assert read_state(work / ".sandbox") is not None  # `up`'s state dir is the working directory's .sandbox

    # No DAG folder configured, none in AIRFLOW_HOME, and no checkout to fall back on: one line, exit 2.
    missing = _run(bluegreen, "status", cwd=work, env=env)
    assert missing.returncode == 2
    assert missing.stderr == (
        f"bluegreen status: DAG folder {work / 'airflow-home' / 'dags'} (Airflow's default [core] dags_folder) "
        f"does not exist; pass --dags-folder (the provider's example DAGs are in {examples})\n"
    )

    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(examples)
    status = _run(bluegreen, "status", cwd=work, env=env)
    assert (status.returncode, status.stderr) == (0, "")
    lines = status.stdout.splitlines()  # the report alone: Airflow's log lines are kept out of it
    assert lines[:2] == ["lego-api  (api.lego-mocs.com)  blue live", "  split:     blue 100 / green 0"], status.stdout

    # Elsewhere, with no sandbox and no credentials: one line, nothing else.
    (work / "elsewhere").mkdir()
    bare = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    bare.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE=str(work / "no-credentials"),
        AWS_CONFIG_FILE=str(work / "no-config"),
    )
    no_aws = _run(bluegreen, "rollback", cwd=work / "elsewhere", env=bare)
    assert (no_aws.returncode, no_aws.stdout) == (1, "")
    assert no_aws.stderr == (
        "bluegreen rollback: no AWS credentials for connection aws_default: Unable to locate credentials "
        "(configure the connection, or start a sandbox here: bluegreen sandbox up)\n"
    )

    down = _run(bluegreen, "sandbox", "down", cwd=work, env=env)
    assert down.returncode == 0, down.stderr
    assert read_state(work / ".sandbox") is None


VIEW_PROBE = """
import json
from pathlib import Path
from airflow import plugins_manager
from fastapi.testclient import TestClient
from bluegreen_provider.ui import pages, plugin
plugins, _ = plugins_manager._get_plugins()
(app,) = [a["app"] for p in plugins if p.name == "bluegreen" for a in p.fastapi_apps]
print(json.dumps({
    "registered": sum(p.name == "bluegreen" for p in plugins),
    "plugin": plugin.__file__,
    "stylesheet": TestClient(app).get("/static/bluegreen.css").status_code,
    "page": "deployment_dag" in pages.services_page([], base="", airflow_root=""),
    "templates": str(pages.PACKAGE),
}))
"""


def test_the_installed_wheel_brings_the_blue_green_view(venv, work):
    """No plugins folder: the wheel's ``airflow.plugins`` entry point registers the view, its templates and
    stylesheet installed with it. (This venv also sees the checkout's editable metadata through the
    borrowed site-packages, so Airflow may report the entry point a second time here.)"""
    import json

    python = venv / "bin" / "python"
    found = _run(python, "-c", VIEW_PROBE, cwd=work, env=_env(venv, work))
    assert found.returncode == 0, found.stderr
    view = json.loads(found.stdout.strip().splitlines()[-1])
    assert view["registered"] == 1
    assert Path(view["plugin"]).is_relative_to(venv) and Path(view["templates"]).is_relative_to(venv)
    assert (view["stylesheet"], view["page"]) == (200, True)

"""Where the local tools find DAG files, plugins and state, installed from a wheel or in a checkout.

Installed from a wheel nothing sits beside the package, so the only files found relative to it are
those it ships: the example DAGs (``bluegreen_provider/example_dags``). The demo's, ``bluegreen
airflow``'s and ``bluegreen sandbox up``'s state (``.airflow/``, ``.sandbox/``) lives under the
directory they are run from. Run from a source checkout (an editable install: ``make demo``,
``make airflow``), the checkout's ``dags/`` and ``plugins/`` are used.
"""

from __future__ import annotations

import os
from pathlib import Path

EXAMPLE_DAGS = Path(__file__).resolve().parent / "example_dags"
SANDBOX_DIR_ENV = "BLUEGREEN_SANDBOX_DIR"
DAGS_FOLDER_ENV = "AIRFLOW__CORE__DAGS_FOLDER"
_PROJECT = 'name = "airflow-provider-bluegreen"'


def source_checkout() -> Path | None:
    """The source checkout this package is imported from (an editable install), None when installed."""
    root = Path(__file__).resolve().parents[1]
    try:
        if _PROJECT in (root / "pyproject.toml").read_text() and (root / "dags").is_dir():
            return root
    except OSError:
        pass
    return None


def state_root() -> Path:
    """Where the demo and ``bluegreen airflow`` keep ``.airflow/`` and ``.sandbox/``: the working directory,
    as ``bluegreen sandbox up`` does (``make`` runs them from the checkout's top)."""
    return Path.cwd()


def sandbox_dirs() -> list[Path]:
    """Where a running sandbox leaves its state file: ``$BLUEGREEN_SANDBOX_DIR`` alone when set, else
    ``bluegreen sandbox up``'s ``.sandbox`` and ``bluegreen airflow``'s ``.sandbox/airflow``."""
    if os.environ.get(SANDBOX_DIR_ENV):
        return [Path(os.environ[SANDBOX_DIR_ENV])]
    root = state_root() / ".sandbox"
    return [root, root / "airflow"]


def local_dags_folder() -> Path:
    """The DAG folder ``bluegreen airflow`` serves: the checkout's ``dags/``, else the shipped examples."""
    checkout = source_checkout()
    return checkout / "dags" if checkout is not None else EXAMPLE_DAGS


def local_plugins_folder() -> Path | None:
    """The checkout's ``plugins/`` (the Blue/Green view); None when installed."""
    checkout = source_checkout()
    return checkout / "plugins" if checkout is not None else None


def configured_dags_folder() -> tuple[Path, str]:
    """The DAG folder the CLI reads services from when none is given, and where that choice came from.

    Airflow's ``[core] dags_folder`` when it is configured (``AIRFLOW__CORE__DAGS_FOLDER`` or
    airflow.cfg); else the checkout's ``dags/`` when run from one; else Airflow's default
    (``$AIRFLOW_HOME/dags``).
    """
    from airflow.configuration import conf

    value = conf.get("core", "dags_folder")
    if DAGS_FOLDER_ENV in os.environ or value != conf.get_default_value("core", "dags_folder"):
        return Path(value).expanduser(), "Airflow's [core] dags_folder"
    checkout = source_checkout()
    if checkout is not None:
        return checkout / "dags", "the source checkout's dags/"
    return Path(value).expanduser(), "Airflow's default [core] dags_folder"

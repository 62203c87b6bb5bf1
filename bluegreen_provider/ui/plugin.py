"""The Blue/Green view in the Airflow UI: a nav entry for the live traffic of every service, and a tab
on each DAG run with that run's deployment timeline.

Airflow loads this plugin through the package's ``airflow.plugins`` entry point, so installing the
wheel is enough. (A provider's ``plugins`` in its provider info is loaded only when
``[core] lazy_discover_providers`` is off, and would then register the plugin a second time.)

Airflow shows both views inside an iframe (``url_route`` makes it a page of the UI; without it the
nav entry would leave the UI). In ``href`` the UI replaces ``{DAG_ID}`` and ``{RUN_ID}`` for views
whose destination is not ``nav``. Importing this module only builds the FastAPI app: no AWS call,
no DB query, so a misconfigured AWS connection can never stop the api-server from starting.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from bluegreen_provider.ui.app import MOUNT_PATH, create_app


class BlueGreenPlugin(AirflowPlugin):
    """Mounts the on-call view at ``/bluegreen`` and links it from the nav and the DAG-run page."""

    name = "bluegreen"
    fastapi_apps = [{"app": create_app(), "url_prefix": MOUNT_PATH, "name": "Blue/Green deployments"}]
    external_views = [
        {
            "name": "Blue/Green",
            "href": f"{MOUNT_PATH}/",
            "destination": "nav",
            "url_route": "bluegreen",
            "nav_top_level": True,
        },
        {
            "name": "Blue/Green timeline",
            "href": f"{MOUNT_PATH}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "bluegreen-run",
        },
    ]

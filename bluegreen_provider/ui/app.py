"""The FastAPI app of the view, mounted by the plugin at ``/bluegreen`` inside Airflow's api-server.

Routes (relative to the mount point)::

    GET /                              every service: split bar, state, lock, retention, versions, alarms
    GET /?service=NAME                 only that service (repeatable)
    GET /api/services[?service=NAME]   the same as JSON
    GET /runs/{dag_id}/{run_id}        one deployment run's timeline, with a chart per soak
    GET /api/runs/{dag_id}/{run_id}    the same as JSON
    GET /static/...                    the stylesheet

The api-server imports the plugin, and with it this module, at start-up; Airflow's workers import
plugins too. So only FastAPI is imported here at module level: AWS hooks, ORM models, templates and
Airflow's security helpers are loaded when a request needs them, and nothing talks to AWS before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

log = logging.getLogger(__name__)

MOUNT_PATH = "/bluegreen"
Services = Annotated[list[str] | None, Query(description="only the services of these names")]
STATIC = Path(__file__).resolve().parents[1] / "static"


async def _require_dag_read(request: Request) -> None:
    """Allow the request only for a logged-in user who may read DAGs (this run's DAG, if one is named).

    Plugin apps are mounted without Airflow's authentication, so the view applies Airflow's own
    checks: the UI's session cookie or a bearer token, then the auth manager's DAG read permission.
    """
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api import security
    from starlette.concurrency import run_in_threadpool

    credentials = await security.bearer_scheme(request)
    user = await security.get_user(request, _oauth_token=None, bearer_credentials=credentials)
    entity = DagAccessEntity.RUN if "dag_id" in request.path_params else None
    await run_in_threadpool(security.requires_access_dag("GET", entity), request, user)


def _aws_conn_id() -> str:
    from airflow.configuration import conf

    return conf.get("bluegreen", "aws_conn_id", fallback="aws_default")


def _base(request: Request) -> str:
    """Where this app is mounted (``/bluegreen``, behind any Airflow base path), for its own links."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _airflow_root(request: Request) -> str:
    """The Airflow UI's root, for links that leave this view (opened in the top window, not the iframe)."""
    root = _base(request)
    return root[: -len(MOUNT_PATH)] if root.endswith(MOUNT_PATH) else ""


def create_app(*, require_login: bool = True) -> FastAPI:
    """The FastAPI app the plugin mounts at ``/bluegreen``.

    ``require_login=False`` serves without Airflow's authentication, for a standalone preview only.
    """
    from fastapi.staticfiles import StaticFiles

    app = FastAPI(
        title="Blue/green deployments",
        description="On-call view of blue/green deployments: live traffic split and deployment timelines.",
        dependencies=[Depends(_require_dag_read)] if require_login else [],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # The stylesheet is the same for everyone: it is served without the login the pages need.
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def services(only: list[str] | None) -> list[dict[str, Any]]:
        from sqlalchemy.exc import SQLAlchemyError

        from bluegreen_provider.ui.services import UnknownService, collect_services

        try:
            return collect_services(aws_conn_id=_aws_conn_id(), only=only or ())
        except UnknownService as err:
            raise HTTPException(404, str(err)) from err
        except SQLAlchemyError as err:
            log.exception("bluegreen UI: could not read the DAGs from the metadata DB")
            raise HTTPException(500, f"could not read the DAGs from Airflow's metadata DB: {err}") from err

    @app.get("/api/services")
    def api_services(service: Services = None) -> list[dict[str, Any]]:
        """What AWS says about every service (or those named by ``?service=``), as JSON."""
        return services(service)

    @app.get("/", response_class=HTMLResponse)
    def services_page(request: Request, service: Services = None) -> HTMLResponse:
        """The on-call overview: one card per service (or per service named by ``?service=``)."""
        from bluegreen_provider.ui import pages

        try:
            entries = services(service)
        except HTTPException as err:
            page = pages.error_page("Blue/green deployments", str(err.detail), base=_base(request))
            return HTMLResponse(page, status_code=err.status_code)
        return HTMLResponse(
            pages.services_page(entries, base=_base(request), airflow_root=_airflow_root(request), only=service or [])
        )

    def timeline_or_404(dag_id: str, run_id: str) -> dict[str, Any]:
        from bluegreen_provider.ui.timeline import run_timeline

        run = run_timeline(dag_id, run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r} of DAG {dag_id!r}")
        return run

    @app.get("/api/runs/{dag_id}/{run_id:path}")
    def api_run(dag_id: str, run_id: str) -> JSONResponse:
        """One run's stages, times, records and sentences, as JSON."""
        return JSONResponse(timeline_or_404(dag_id, run_id))

    @app.get("/runs/{dag_id}/{run_id:path}", response_class=HTMLResponse)
    def run_page(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
        """One run's timeline: a sentence per stage, a chart per soak."""
        from bluegreen_provider.ui import pages

        try:
            run = timeline_or_404(dag_id, run_id)
        except HTTPException as err:
            return HTMLResponse(
                pages.error_page("Run not found", str(err.detail), base=_base(request)), status_code=err.status_code
            )
        return HTMLResponse(pages.run_page(run, base=_base(request), airflow_root=_airflow_root(request)))

    return app

"""Which services the view shows, found in the serialized DAGs of the metadata DB, and what AWS says of each.

Why the serialized DAGs: Airflow 3's api-server never runs DAG code; the DAG processor parses the
files and stores every DAG serialized. A DAG built by ``deployment_dag`` keeps its service config
there in two parts: the ``plan`` task's ``spec`` (a template field: the static config, with
``{{ params.NAME }}`` for each run knob) and the DAG params (each knob's default). Put back
together they are the config as the DAG file wrote it at its last parse, which is what the CLI
gets by running the files. The other sources fall short: the plan's XCom exists only once a run
planned, and holds that run's config (its params, not the file's); the Route53 state record names
the service but not its zone, record, slots, functions or alarms.

One limit of the serialized form: a template field longer than ``[core] max_templated_field_length``
is stored cut off. For such a service the config of its latest planned run (the plan's XCom)
stands in, and without one the entry says which setting to raise.

DAGs are recognised by their tasks' operator classes, not by tags (``deployment_dag(tags=...)``
may replace them). A DAG file removed since is stale in the DB and no longer shown. Decoding a
serialized DAG is kept per DAG version hash, so a page load reads only hashes unless a DAG changed.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bluegreen_provider.spec import DeploymentSpec

log = logging.getLogger(__name__)

PLAN_TASK = ("bluegreen_provider.operators.plan", "PlanDeploymentOperator")
MANUAL_ROLLBACK_TASK = ("bluegreen_provider.operators.rollback", "ManualRollbackOperator")
_OUR_MODULES = frozenset({PLAN_TASK[0], MANUAL_ROLLBACK_TASK[0]})
_PARAM_REF = re.compile(r"^\s*\{\{\s*params\.(\w+)\s*\}\}\s*$")
_GENERIC_TAGS = frozenset({"bluegreen", "rollback"})
# In a cut-off spec (Python's repr of the dict, keys sorted) the name survives if the cut came after it.
_SERVICE_IN_TEXT = re.compile(r"'service': '([^'\\]+)'")


@dataclass(frozen=True)
class DagFacts:
    """What one serialized DAG says about blue/green: the deployment or rollback DAG of a service."""

    dag_id: str
    kind: str  # "deploy" or "rollback"
    service: str | None
    config: dict[str, Any] | None
    problem: str | None
    updated: datetime | None


@dataclass
class Service:
    """A service as the DAGs define it: its spec (or why there is none) and its DAGs."""

    name: str
    spec: DeploymentSpec | None = None
    config_from: str | None = None
    problem: str | None = None
    deploy_dag_ids: list[str] = field(default_factory=list)
    rollback_dag_ids: list[str] = field(default_factory=list)


_cache: dict[str, tuple[str, DagFacts | None]] = {}
_cache_lock = threading.Lock()


def _task_kind(module: Any, task_type: Any) -> str | None:
    if (module, task_type) == PLAN_TASK:
        return "deploy"
    if (module, task_type) == MANUAL_ROLLBACK_TASK:
        return "rollback"
    return None


def _mentions_ours(data: Any) -> bool:
    """Cheaply, from the raw JSON: has this DAG a task of ours? Unknown layouts count as yes (decoded to see)."""
    try:
        return any(task["__var"].get("_task_module") in _OUR_MODULES for task in data["dag"]["tasks"])
    except (KeyError, TypeError, AttributeError):
        return True


def _named_by_tags(tags: Any) -> str | None:
    """The factories tag a DAG ``bluegreen`` + the service name: the name when no config can be read."""
    names = sorted(set(tags or ()) - _GENERIC_TAGS)
    return names[0] if len(names) == 1 else None


def _resolve_params(spec: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The plan task's spec with each ``{{ params.NAME }}`` value replaced by that param's default."""
    config: dict[str, Any] = {}
    missing: list[str] = []
    for key, value in spec.items():
        ref = _PARAM_REF.match(value) if isinstance(value, str) else None
        if ref is None:
            config[key] = value
        elif ref.group(1) in params:
            config[key] = params[ref.group(1)]
        else:
            missing.append(ref.group(1))
    return config, missing


def dag_facts(dag: Any, updated: datetime | None = None) -> DagFacts | None:
    """Read a deserialized DAG: a deployment DAG (a plan task) or a rollback DAG (a manual rollback task)."""
    for task in dag.tasks:
        kind = _task_kind(getattr(task, "_task_module", None), getattr(task, "task_type", None))
        if kind is None:
            continue
        spec = getattr(task, "spec", None)
        if not isinstance(spec, Mapping):
            problem = (
                f"the service config of DAG {dag.dag_id} is stored cut off in the serialized DAG (longer than "
                "[core] max_templated_field_length); raise that setting, or run the DAG once"
            )
            named = _SERVICE_IN_TEXT.search(str(spec or ""))
            service = named.group(1) if named else _named_by_tags(dag.tags)
            return DagFacts(dag.dag_id, kind, service, None, problem, updated)
        problem = None
        config = dict(spec)
        if kind == "deploy":
            params = {name: dag.params[name] for name in dag.params}
            config, missing = _resolve_params(spec, params)
            if missing:
                problem = f"DAG {dag.dag_id} has no param {', '.join(missing)} for its plan's spec"
        service = config.get("service") if isinstance(config.get("service"), str) else _named_by_tags(dag.tags)
        if kind == "deploy" and config.get("region_name"):
            config = _with_regions(config, dag)
        return DagFacts(dag.dag_id, kind, service, None if problem else config, problem, updated)
    return None


def _with_regions(first: Mapping[str, Any], dag: Any) -> dict[str, Any]:
    """A multi-region DAG's config: the first region's plan spec with every region's plan listed under ``regions``."""
    regions = []
    for task in dag.tasks:
        spec = getattr(task, "spec", None)
        if (
            _task_kind(getattr(task, "_task_module", None), getattr(task, "task_type", None)) == "deploy"
            and isinstance(spec, Mapping)
            and spec.get("region_name")
        ):
            keys = ("region_name", "record_name", "hosted_zone", "alarms")
            regions.append({key: spec.get(key) for key in keys})
    return {**first, "region_name": None, "regions": regions}


def _latest_serialized(session: Session) -> list[tuple[Any, str, str, datetime]]:
    """(row id, dag_id, dag_hash, last_updated) of each DAG's newest serialized version, stale DAGs left out."""
    from airflow.models.dag import DagModel
    from airflow.models.dag_version import DagVersion
    from airflow.models.serialized_dag import SerializedDagModel
    from sqlalchemy import func, select

    newest = (
        select(DagVersion.dag_id, func.max(DagVersion.version_number).label("number"))
        .group_by(DagVersion.dag_id)
        .subquery()
    )
    query = (
        select(
            SerializedDagModel.id,
            SerializedDagModel.dag_id,
            SerializedDagModel.dag_hash,
            SerializedDagModel.last_updated,
        )
        .join(DagVersion, SerializedDagModel.dag_version_id == DagVersion.id)
        .join(newest, (DagVersion.dag_id == newest.c.dag_id) & (DagVersion.version_number == newest.c.number))
        .join(DagModel, DagModel.dag_id == SerializedDagModel.dag_id)
        .where(DagModel.is_stale.is_(False))
    )
    return [tuple(row) for row in session.execute(query)]


def _decode(session: Session, row_id: Any, updated: datetime) -> DagFacts | None:
    from airflow.models.serialized_dag import SerializedDagModel

    model = session.get(SerializedDagModel, row_id)
    if model is None or not _mentions_ours(model.data):
        return None
    return dag_facts(model.dag, updated)


def blue_green_dags(session: Session) -> list[DagFacts]:
    """Every current deployment and rollback DAG, decoded once per DAG version."""
    found: list[DagFacts] = []
    seen: set[str] = set()
    for row_id, dag_id, dag_hash, updated in _latest_serialized(session):
        seen.add(dag_id)
        with _cache_lock:
            cached = _cache.get(dag_id)
        if cached is not None and cached[0] == dag_hash:
            facts = cached[1]
        else:
            try:
                facts = _decode(session, row_id, updated)
            except Exception as err:  # one undecodable DAG must not hide the others
                log.warning("bluegreen UI: could not read serialized DAG %s: %s", dag_id, err)
                continue
            with _cache_lock:
                _cache[dag_id] = (dag_hash, facts)
        if facts is not None:
            found.append(facts)
    with _cache_lock:
        for gone in set(_cache) - seen:
            del _cache[gone]
    return found


def _latest_plan_config(session: Session, dag_id: str) -> tuple[dict[str, Any], str] | None:
    """The spec the latest run of ``dag_id`` planned with (the plan's XCom), and that run's id."""
    from airflow.models.xcom import XCOM_RETURN_KEY, XComModel
    from sqlalchemy import select

    rows = session.scalars(
        select(XComModel)
        .where(XComModel.dag_id == dag_id, XComModel.task_id == "plan", XComModel.key == XCOM_RETURN_KEY)
        .order_by(XComModel.timestamp.desc())
        .limit(1)
    )
    for row in rows:
        value = XComModel.deserialize_value(row)
        if isinstance(value, Mapping) and isinstance(value.get("spec"), Mapping):
            return dict(value["spec"]), row.run_id
    return None


def find_services(session: Session) -> list[Service]:
    """The services the current DAGs deploy, in name order, without running any DAG file.

    Two deployment DAGs of one service: the config of the one parsed last is shown, both are linked.
    """
    from bluegreen_provider.spec import DeploymentSpec, SpecError

    dags = blue_green_dags(session)
    services: dict[str, Service] = {}
    newest_first = sorted(dags, key=lambda f: (f.updated is not None, f.updated), reverse=True)
    for facts in newest_first:
        name = facts.service or facts.dag_id
        service = services.setdefault(name, Service(name))
        (service.deploy_dag_ids if facts.kind == "deploy" else service.rollback_dag_ids).append(facts.dag_id)
    for facts in newest_first:
        service = services[facts.service or facts.dag_id]
        if facts.kind != "deploy" or service.spec is not None:
            continue
        config, source = facts.config, f"DAG {facts.dag_id}"
        if config is None:
            planned = _latest_plan_config(session, facts.dag_id)
            if planned is None:
                service.problem = service.problem or facts.problem
                continue
            config, source = planned[0], f"the plan of run {planned[1]} of DAG {facts.dag_id}"
        try:
            service.spec = DeploymentSpec.from_dict(config)
        except SpecError as err:
            service.problem = service.problem or f"the config in {source} is not valid: {err}"
            continue
        service.config_from, service.problem = source, None
    # A service that only a rollback DAG names is not deployed by any DAG: nothing to show for it.
    return [s for _, s in sorted(services.items()) if s.deploy_dag_ids]


def _latest_runs(session: Session, services: list[Service]) -> dict[str, dict[str, Any]]:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    found: dict[str, dict[str, Any]] = {}
    for service in services:
        run = session.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.state)
            .where(DagRun.dag_id.in_(service.deploy_dag_ids))
            .order_by(DagRun.id.desc())
            .limit(1)
        ).first()
        if run is not None:
            found[service.name] = {"dag_id": run[0], "run_id": run[1], "state": str(getattr(run[2], "value", run[2]))}
    return found


class UnknownService(LookupError):
    """A service was asked for by name that no current deployment DAG deploys."""


def collect_services(*, aws_conn_id: str, only: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every service's status (the ``bluegreen status`` fields), its DAGs and latest run, in name order;
    with ``only``, just the services of those names (AWS is read for no other).

    A failure reading one service (missing record, AWS unreachable, bad credentials, an unreadable
    config) becomes that entry's ``error`` so the others still show: the page is most needed when
    something is broken.
    """
    from airflow.utils.session import create_session

    from bluegreen_provider.status import service_status

    with create_session() as session:
        services = find_services(session)
        if only:
            unknown = sorted(set(only) - {s.name for s in services})
            if unknown:
                names = ", ".join(s.name for s in services) or "none"
                raise UnknownService(f"no service {', '.join(map(repr, unknown))}; the DAGs deploy: {names}")
            services = [s for s in services if s.name in only]
        runs = _latest_runs(session, services)
    entries: list[dict[str, Any]] = []
    for service in services:
        links = {
            "deploy_dag_ids": service.deploy_dag_ids,
            "rollback_dag_id": service.rollback_dag_ids[0] if service.rollback_dag_ids else None,
            "latest_run": runs.get(service.name),
            "config_from": service.config_from,
        }
        if service.spec is None:
            entries.append({"service": service.name, "record": None, "error": service.problem, **links})
            continue
        for region in service.spec.region_specs():  # a card per region of a multi-region service
            try:
                entry = {**service_status(region, aws_conn_id=aws_conn_id).to_dict(), "error": None}
            except Exception as err:  # any failure is this service's, never the page's
                log.warning("bluegreen UI: status of %s failed: %s", service.name, err)
                entry = {
                    "service": service.name,
                    "region": region.region_name,
                    "record": region.record_name,
                    "error": f"{type(err).__name__}: {err}",
                }
            entries.append({**entry, **links})
    return entries

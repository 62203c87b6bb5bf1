"""Build the blue/green deployment DAG (and its manual-rollback DAG) for one service from a config.

A team with four APIs writes four short DAG files, each a config plus one call. The DAG is the
story's timeline, one stage per task so the Gantt view shows each stage's duration and any stage
can be cleared and re-run:

    plan → deploy_green → run_migrations → health_check → shift_10 → soak_10 → shift_50 → soak_50
         → approval → shift_100 → teardown_blue          (approval → hold when rejected)
    rollback: the run's teardown, however the run ends (every stage's on_failure_callback also
              sends the rollback at once; the teardown waits for INSYNC and reads it back)

A config that lists ``regions`` gets those stages once per region, in a task group each
(``<region>.plan`` … ``<region>.rollback``), with one ``run_migrations`` and one ``approval``; the
regions step in lockstep or in waves (``region_rollout``) and a failure anywhere rolls all back.

The config's ``notifications`` reach the approval's HITL request (its ``notifiers``) and the DAG's
Deadline Alert ("overdue"); the stages send the rest (:mod:`bluegreen_provider.notifications`).

The traffic steps shape the tasks, so they come from the config; everything else (release,
soaks, threshold, timeouts, retention, dry run) is a run Param validated by JSON schema and
checked again by the plan before anything changes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup, TriggerRule

from bluegreen_provider.notifications import ApprovalNotifier, overdue_alert
from bluegreen_provider.operators.deploy import DeployGreenOperator
from bluegreen_provider.operators.health import HealthCheckOperator
from bluegreen_provider.operators.migrations import RunMigrationsOperator
from bluegreen_provider.operators.plan import PlanDeploymentOperator
from bluegreen_provider.operators.rollback import ManualRollbackOperator, RollbackOperator
from bluegreen_provider.operators.teardown import TeardownBlueOperator
from bluegreen_provider.operators.traffic import ShiftWeightOperator
from bluegreen_provider.rollback import rollback_on_failure
from bluegreen_provider.sensors.approval import ApprovalSensor, HoldOperator
from bluegreen_provider.sensors.error_rate import ErrorRateSensor
from bluegreen_provider.spec import MAX_SECONDS, DeploymentSpec, Release

# Run-time knobs a person may change when triggering; their defaults come from the service config.
_RUN_PARAMS: dict[str, dict[str, Any]] = {
    "functions": {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "zip_file": {"type": ["string", "null"]},
                "s3_bucket": {"type": ["string", "null"]},
                "s3_key": {"type": ["string", "null"]},
                "image_uri": {"type": ["string", "null"]},
                "version": {"type": ["string", "null"]},
            },
            "additionalProperties": False,
        },
        "description": "The functions to release, by name (they take the release below); a function may give "
        "its own source instead: exactly one of zip_file, s3_bucket+s3_key, image_uri or version.",
    },
    "release": {
        "type": ["object", "null"],
        "properties": {
            key: {"type": ["string", "integer"] if key == "version" else "string", "minLength": 1}
            for key in Release.__dataclass_fields__
        },
        "additionalProperties": False,
        "dependentRequired": {
            "s3_key": ["s3_bucket"],
            "s3_prefix": ["s3_bucket"],
            "image_repository": ["image_tag"],
            "image_tag": ["image_repository"],
        },
        "description": "The code of every function given by name only, named once: version; zip_file; "
        "zip_dir (<dir>/<function>.zip); s3_bucket with s3_key or s3_prefix (<prefix><function>.zip); image_uri; "
        "or image_repository with image_tag. {function} in a value is each function's name. label: free text "
        'shown in the plan, e.g. {"label": "1.4.2", "s3_bucket": "artifacts", "s3_prefix": "releases/1.4.2/"}.',
    },
    "steps": {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "required": ["weight"],
            "properties": {
                "weight": {"type": "integer", "minimum": 1, "maximum": 100},
                "soak_seconds": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
            },
            "additionalProperties": False,
        },
        "description": "Traffic steps (candidate %) and soak per step. The weights are this DAG's stages; "
        "soaks may change per run.",
    },
    "error_rate_threshold_pct": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
    "min_requests": {"type": "integer", "minimum": 0},
    "poll_interval_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
    "no_data_policy": {"type": "string", "enum": ["fail", "pass"]},
    "approval_timeout_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_SECONDS},
    "approval_timeout_policy": {"type": "string", "enum": ["hold", "rollback"]},
    "approval_mode": {
        "type": "string",
        "enum": ["required", "auto"],
        "description": "auto: promote without a person when every soak was clean and the candidate no worse "
        "than live; anything marginal still waits for a person.",
    },
    "retention_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_SECONDS},
    "metrics_period_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_SECONDS},
    "metrics_lag_seconds": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
    "comparison_margin": {"type": "number", "minimum": 1},
    "post_promotion_policy": {"type": "string", "enum": ["rollback", "notify", "off"]},
}


# Every service a DAG file builds, by name: the CLI and the UI act on exactly what the DAGs deploy.
REGISTERED_SERVICES: dict[str, DeploymentSpec] = {}


def _params(spec: DeploymentSpec) -> dict[str, Param]:
    # JSON types (the schema wants arrays, not tuples); the release as typed, not resolved per function
    defaults = json.loads(json.dumps({**spec.to_dict(), **spec.release_inputs()}))
    schemas = copy.deepcopy(_RUN_PARAMS)
    # A run releases some or all of the service's functions, never one the service config does not name.
    schemas["functions"]["items"]["properties"]["name"]["enum"] = [f.name for f in spec.functions]
    params = {name: Param(defaults[name], **schema, title=name.replace("_", " ")) for name, schema in schemas.items()}
    params["dry_run"] = Param(
        False, type="boolean", title="dry run", description="Plan and print every change; change nothing."
    )
    return params


def _pct(weight: int) -> str:
    return str(weight)


def deployment_dag(
    dag_id: str,
    config: Mapping[str, Any],
    *,
    aws_conn_id: str = "aws_default",
    region_name: str | None = None,
    tags: list[str] | None = None,
    start_date: datetime | None = None,
    stage_retries: int = 2,
    stage_retry_delay: timedelta = timedelta(seconds=5),
    **dag_kwargs: Any,
) -> DAG:
    """The story's deployment DAG for the service described by ``config`` (a DeploymentSpec dict).

    The config is validated when the DAG file is parsed, so a typo fails in the DAG list, not at
    3 a.m. halfway through a rollout.

    :param stage_retries: how often a stage is tried again after a crash: its process killed, its
        worker lost, AWS unreachable past botocore's retries. Every stage is idempotent and reads
        its truth back from AWS, so a retry picks up where the crash left it. Verdicts (a breach,
        a refusal, a lost race) raise ``AirflowFailException`` and are never retried: they roll back.
    :param stage_retry_delay: the pause before such a retry.
    """
    if isinstance(stage_retries, bool) or not isinstance(stage_retries, int) or stage_retries < 0:
        raise ValueError(f"stage_retries must be an int >= 0, got {stage_retries!r}")
    spec = DeploymentSpec.from_dict(config)
    REGISTERED_SERVICES[spec.service] = spec
    static = spec.to_dict()
    run_spec = dict(static)
    for name in _RUN_PARAMS:
        run_spec[name] = "{{ params.%s }}" % name  # noqa: UP031 - a Jinja expression, not formatting

    stage_args: dict[str, Any] = {
        "aws_conn_id": aws_conn_id,
        "region_name": region_name,
        "on_failure_callback": rollback_on_failure,
        "retries": stage_retries,
        "retry_delay": stage_retry_delay,
    }
    overdue = overdue_alert(spec, aws_conn_id=aws_conn_id, region_name=region_name)
    if overdue is not None:
        given = dag_kwargs.pop("deadline", None) or []
        dag_kwargs["deadline"] = [*([given] if not isinstance(given, list | tuple) else given), overdue]
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=start_date or datetime(2025, 1, 1),
        catchup=False,
        params=_params(spec),
        render_template_as_native_obj=True,
        tags=tags or ["bluegreen", spec.service],
        max_active_runs=dag_kwargs.pop("max_active_runs", 1),
        doc_md=__doc__,
        **dag_kwargs,
    ) as dag:
        retry = {"retries": stage_retries, "retry_delay": stage_retry_delay}
        regions = [
            _RegionStages.build(
                region,
                run_spec,
                stage_args=stage_args if not spec.regions else {**stage_args, "region_name": region.region_name},
                retry=retry,
                grouped=bool(spec.regions),
            )
            for region in spec.region_specs()
        ]
        migrations = None
        if spec.migrations:
            m = spec.migrations
            migrations = RunMigrationsOperator(
                task_id="run_migrations",
                postgres_conn_id=m.conn_id,
                migrations_folder=m.folder,
                command=m.command,
                env=dict(m.env) if m.env else None,
                pass_env=list(m.pass_env) if m.pass_env else None,
                lock_key=f"bluegreen:{spec.service}",
                lock_timeout_seconds=m.lock_timeout_seconds,
                statement_timeout_seconds=m.statement_timeout_seconds,
                deadline_seconds=m.deadline_seconds,
                on_failure_callback=rollback_on_failure,
                **retry,
            )
        first = regions[0]
        approval = ApprovalSensor(
            task_id="approval",
            evidence_task_ids=[r.id(f"soak_{_pct(s.weight)}") for s in spec.canary_steps for r in regions],
            promote_task_ids=[r.id(t) for r in regions for t in ("shift_100", "teardown_blue")],
            region_plan_task_ids={r.region: r.id("plan") for r in regions} if spec.regions else None,
            assigned_users=spec.approvers or None,
            notifiers=[ApprovalNotifier(spec.notifications)] if spec.notifications else None,
            plan_task_id=first.id("plan"),
            **{**stage_args, "region_name": first.region_name},
        )
        # deploy everywhere -> migrate once -> health everywhere -> each step (lockstep, or the first
        # region first in waves) -> one approval -> promote and tear down everywhere.
        before = [r.deploy for r in regions]
        if migrations is not None:
            before >> migrations
            before = [migrations]
        for r in regions:
            before >> r.health
        before = [r.health for r in regions]
        waves = [regions[:1], regions[1:]] if spec.region_rollout == "waves" else [regions]
        for index in range(len(spec.canary_steps)):
            for wave in waves:
                for r in wave:
                    before >> r.shifts[index]
                before = [r.soaks[index] for r in wave]
            before = [r.soaks[index] for r in regions]
        before >> approval
        for r in regions:
            approval >> r.promote >> r.teardown
            approval >> r.hold
            # The rollback is the run's teardown: Airflow runs it however the run ends, also when a
            # person marks the run failed (no callback runs then). It waits for the deployment stages
            # (every region's: a breach anywhere rolls every region back), not for the 24 h retention.
            everything = [t for other in regions for t in other.stages] + [approval]
            if migrations is not None:
                everything.append(migrations)
            everything >> r.rollback.as_teardown(setups=r.plan)
    return dag


class _RegionStages:
    """One region's stages; task ids are ``<region>.<stage>`` when the service lists regions."""

    def __init__(self, region: DeploymentSpec, grouped: bool) -> None:
        self.region = region.region_name or ""
        self.region_name = region.region_name
        self.prefix = f"{self.region}." if grouped else ""

    def id(self, stage: str) -> str:
        return self.prefix + stage

    @classmethod
    def build(
        cls,
        region: DeploymentSpec,
        run_spec: Mapping[str, Any],
        *,
        stage_args: Mapping[str, Any],
        retry: Mapping[str, Any],
        grouped: bool,
    ) -> _RegionStages:
        self = cls(region, grouped)
        region_spec = {**run_spec, **_region_keys(region)}
        aws = {"aws_conn_id": stage_args["aws_conn_id"], "region_name": stage_args["region_name"]}
        args = {**stage_args, "plan_task_id": self.id("plan")}
        with TaskGroup(self.region, tooltip=f"{region.record_name} in {self.region}") if grouped else nullcontext():
            self.plan = PlanDeploymentOperator(
                task_id="plan",
                spec=region_spec,
                dry_run="{{ params.dry_run }}",
                stage_weights=[step.weight for step in region.steps],
                run_params=[*_RUN_PARAMS, "dry_run"],
                **aws,
                **retry,
            )
            self.deploy = DeployGreenOperator(task_id="deploy_green", **args)
            self.health = HealthCheckOperator(task_id="health_check", **args)
            self.shifts, self.soaks = [], []
            for step in region.canary_steps:
                pct = _pct(step.weight)
                self.shifts.append(ShiftWeightOperator(task_id=f"shift_{pct}", candidate_pct=step.weight, **args))
                self.soaks.append(
                    ErrorRateSensor(
                        task_id=f"soak_{pct}", stage_pct=step.weight, shift_task_id=self.id(f"shift_{pct}"), **args
                    )
                )
                self.shifts[-1] >> self.soaks[-1]
            self.promote = ShiftWeightOperator(
                task_id="shift_100", candidate_pct=100, approval_task_id="approval", **args
            )
            self.teardown = TeardownBlueOperator(
                task_id="teardown_blue",
                promote_task_id=self.id("shift_100"),
                plan_task_id=self.id("plan"),
                **aws,
                retries=max(2, retry["retries"]),
                retry_delay=retry["retry_delay"],
            )
            self.hold = HoldOperator(
                task_id="hold", plan_task_id=self.id("plan"), trigger_rule=TriggerRule.ALL_DONE, **aws, **retry
            )
            self.rollback = RollbackOperator(
                task_id="rollback",
                hold_task_id=self.id("hold"),
                plan_task_id=self.id("plan"),
                **aws,
                retries=3,
                retry_delay=timedelta(seconds=10),
            )
        self.plan >> self.deploy
        return self

    @property
    def stages(self) -> list[Any]:
        """The tasks this region's rollback waits for."""
        return [self.deploy, self.health, *self.shifts, *self.soaks, self.promote, self.hold]


def _region_keys(region: DeploymentSpec) -> dict[str, Any]:
    """What a region's spec changes in the service's run spec (nothing for a single-region service)."""
    if region.region_name is None:
        return {}
    return {
        "region_name": region.region_name,
        "record_name": region.record_name,
        "hosted_zone": region.hosted_zone,
        "alarms": list(region.alarms),
        "regions": [],
        "region_rollout": "lockstep",
    }


def rollback_dag(
    dag_id: str,
    config: Mapping[str, Any],
    *,
    aws_conn_id: str = "aws_default",
    region_name: str | None = None,
    start_date: datetime | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """A one-task DAG that puts all traffic back where it safely belongs (see rollback.manual_rollback)."""
    spec = DeploymentSpec.from_dict(config)
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=start_date or datetime(2025, 1, 1),
        catchup=False,
        tags=["bluegreen", spec.service, "rollback"],
        doc_md=f"Emergency rollback for {spec.service}: mid-deployment → back to the live slot; "
        "after promotion, within retention → back to the retained slot. Idempotent.",
        **dag_kwargs,
    ) as dag:
        ManualRollbackOperator(
            task_id="rollback", spec=spec.to_dict(), aws_conn_id=aws_conn_id, region_name=region_name
        )
    return dag

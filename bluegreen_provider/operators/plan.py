"""The plan stage: validate the spec, read AWS, decide which slot is live, and take the lock.

Everything a deployment could be refused for is found here, before anything changes. A dry run
stops here: it reads and validates the same way, lists every change the deployment would make,
and skips the rest of the DAG.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import SkipMixin
from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.operators.base import StageOperator
from bluegreen_provider.plan import Plan
from bluegreen_provider.release_actions import ReleaseAction, resolve_release
from bluegreen_provider.spec import DeploymentSpec, SpecError, load_spec
from bluegreen_provider.state import ServiceState, TransitionRefused, acquire

if TYPE_CHECKING:
    from airflow.sdk import Context

    from bluegreen_provider.hooks.lambda_alias import AliasTarget

log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def as_bool(value: bool | str, name: str = "dry_run") -> bool:
    """Accept a bool or the strings a rendered template gives ("True", "false", "1", ...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name} must be a bool or 'true'/'false', got {value!r}")


def dag_run_is_active(owner: str) -> bool:
    """Whether the run ``dag_id/run_id`` is still queued or running, asked of Airflow.

    A run Airflow does not know (deleted) is not active; if Airflow cannot be asked, assume it is,
    so a service is never taken from a live deployment by mistake.
    """
    from airflow.sdk.exceptions import AirflowRuntimeError
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    dag_id, _, run_id = owner.partition("/")
    try:
        state = RuntimeTaskInstance.get_dagrun_state(dag_id, run_id)
    except AirflowRuntimeError as err:
        if (err.error.detail or {}).get("status_code") == 404:
            return False
        log.warning("Could not read the state of run %s (%s); treating it as active", owner, err)
        return True
    except Exception as err:
        log.warning("Could not read the state of run %s (%s); treating it as active", owner, err)
        return True
    return str(getattr(state, "value", state)) in ("queued", "running")


class PlanDeploymentOperator(StageOperator, SkipMixin):
    """
    Resolve the deployment: which slot is live, which is the candidate, and what runs in each.

    Refuses, before any change, a spec with errors, a missing zone/record/set/function/live alias,
    an explicit version or zip that does not exist, or a split that is not clean (both slots with
    traffic, or neither), unless this run already owns the lock (a re-run: ``resumed``). Then takes
    the deployment lock. Returns ``Plan.to_dict()``; a dry run adds ``"changes"`` and skips every
    downstream task.

    :param spec: the deployment spec, as a mapping or JSON text (DAG params render either way).
    :param dry_run: read and validate only: take no lock, change nothing, list the changes.
    :param stage_weights: the traffic steps the DAG's stages were built for (``shift_10``, ``shift_50``,
        ``shift_100``); a run whose steps name other weights is refused, since no stage would take them.
    :param run_params: the params the DAG declares; a run triggered with any other key is refused
        (Airflow accepts it, and a misspelt threshold would silently keep its default).
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields, "spec", "dry_run")
    ui_color = "#fff9c4"

    def __init__(
        self,
        *,
        spec: Mapping[str, Any] | str,
        dry_run: bool | str = False,
        stage_weights: Sequence[int] | None = None,
        run_params: Collection[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.dry_run = dry_run
        self.stage_weights = list(stage_weights) if stage_weights is not None else None
        self.run_params = sorted(run_params) if run_params is not None else None
        # A literal spec is checked when the DAG is parsed; a templated one when it is rendered.
        if isinstance(dry_run, bool) or "{{" not in str(dry_run):
            as_bool(dry_run)
        if isinstance(spec, Mapping) and "{{" not in json.dumps(spec, default=str):
            load_spec(spec)

    def execute(self, context: Context) -> dict[str, Any]:
        from bluegreen_provider.hooks.lambda_alias import LambdaReleaseError
        from bluegreen_provider.hooks.route53 import WeightedRecordError
        from bluegreen_provider.routers import TrafficError

        spec, dry_run = self._inputs(context)
        owner = self.run_owner(context)
        try:
            zone_id = self.route53.resolve_zone_id(spec.hosted_zone)
            split = self.traffic_router(spec, zone_id).read_split()
        except (WeightedRecordError, TrafficError) as err:
            raise AirflowFailException(f"deployment refused: {err}") from err
        try:
            for release in spec.functions:
                self.lambdas.require_function(release.name)
            aliases = {
                slot.name: {r.name: self.lambdas.get_alias(r.name, slot.alias) for r in spec.functions}
                for slot in spec.slots.values()
            }
        except LambdaReleaseError as err:
            raise AirflowFailException(f"deployment refused: {err}") from err

        service = ServiceState(self.route53, zone_id, spec, lambdas=self.lambdas)
        # Decide without changing anything and check everything; only then take the service.
        current, live_versions, actions = self._decide(service, spec, split, aliases, owner)
        alarm_warnings: list[str] = []
        firing = self._alarms_in_alarm(spec)
        try:
            state, warnings = acquire(
                service, owner, live_versions=live_versions, run_is_active=dag_run_is_active, dry_run=dry_run
            )
        except TransitionRefused as err:
            raise AirflowFailException(f"deployment refused: {err}") from err
        alarms_firing = self._excused(firing, state.started_at, alarm_warnings)
        warnings += alarm_warnings
        live, candidate = state.live, state.candidate
        resumed = any(w.startswith("this run already owns") for w in warnings)
        retained = current.state.retained if current.state else None
        replaces = (
            {"slot": retained.slot, "until": retained.until, "owner": retained.owner}
            if retained is not None and retained.active() and retained.slot == candidate and not resumed
            else None
        )
        for warning in warnings:
            self.log.warning("%s", warning)

        plan = Plan(
            spec=spec,
            zone_id=zone_id,
            live=live,
            candidate=candidate,
            owner=owner,
            split_before=split,
            live_versions={n: a.version for n, a in aliases[live].items() if a is not None},
            generation=state.generation,
            candidate_versions_before={n: a.version if a else None for n, a in aliases[candidate].items()},
            alarms_firing=alarms_firing,
            replaces_retained=replaces,
            resumed=resumed,
            warnings=warnings,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self.log.info("Plan: live %s, candidate %s, traffic %s", live, candidate, plan.describe_split(split))
        if spec.release is not None:
            taking = [f["name"] for f in spec.release_inputs()["functions"] if len(f) == 1]
            self.log.info(
                "Release %s %s for %s",
                spec.release.label or "(no label)",
                spec.release.to_dict(),
                ", ".join(taking) or "no function (each names its own code)",
            )
        result = plan.to_dict()
        if not dry_run:
            return result
        result["changes"] = self._changes(plan, actions, aliases[candidate])
        for change in result["changes"]:
            self.log.info("DRY RUN would %s: %s", change["stage"], change["change"])
        context["ti"].xcom_push(key="return_value", value=result)
        if self.downstream_task_ids:
            self.skip(ti=context["ti"], tasks=context["task"].get_flat_relatives(upstream=False))
        return result

    # -- inputs -----------------------------------------------------------------------------------
    def _inputs(self, context: Context) -> tuple[DeploymentSpec, bool]:
        """The run's spec and dry-run flag; refuses, listing every problem, before anything is read from AWS."""
        problems = self._unknown_params(context)
        spec: DeploymentSpec | None = None
        dry_run = False
        try:
            spec = load_spec(self.spec)
        except SpecError as err:
            problems += err.problems
        try:
            dry_run = as_bool(self.dry_run)
        except ValueError as err:
            problems.append(str(err))
        if spec is not None:
            problems += self._stage_problems(spec) + self._migration_problems(spec)
        if problems or spec is None:
            raise AirflowFailException(f"deployment refused: {SpecError(problems)}")
        return spec, dry_run

    def _unknown_params(self, context: Context) -> list[str]:
        if self.run_params is None:
            return []
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        problems = []
        for key in sorted(set(conf) - set(self.run_params), key=str):
            shown = repr(key) if len(repr(key)) <= 60 else f"{repr(key)[:60]}…"
            close = difflib.get_close_matches(str(key), self.run_params, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; they are {self.run_params}"
            problems.append(f"run param {shown} is not one of this DAG's params{hint}")
        return problems

    def _stage_problems(self, spec: DeploymentSpec) -> list[str]:
        weights = [step.weight for step in spec.steps]
        if self.stage_weights is None or weights == self.stage_weights:
            return []
        return [
            f"steps: this DAG's traffic stages are {' → '.join(map(str, self.stage_weights))} %; a run may change "
            f"each step's soak_seconds, not its weights (got {' → '.join(map(str, weights))})"
        ]

    @staticmethod
    def _migration_problems(spec: DeploymentSpec) -> list[str]:
        """A migrations folder is read (never a database) so a bad file stops the run before the deploy."""
        if spec.migrations is None or not spec.migrations.folder:
            return []
        from bluegreen_provider.migrations import MigrationConfigError, load_migrations

        try:
            load_migrations(spec.migrations.folder)
        except MigrationConfigError as err:
            return [f"migrations: {err}"]
        return []

    # -- decisions --------------------------------------------------------------------------------
    def _decide(
        self,
        service: ServiceState,
        spec: DeploymentSpec,
        split: Mapping[str, int],
        aliases: Mapping[str, Mapping[str, AliasTarget | None]],
        owner: str,
    ) -> tuple[Any, dict[str, str], dict[str, ReleaseAction]]:
        """What the plan would take (a dry acquire) and the release it implies; raises before any change."""
        from bluegreen_provider.hooks.lambda_alias import LambdaReleaseError

        try:
            current = service.read()
            live = self._live_guess(spec, split, current.state, owner)
            live_versions = {n: a.version for n, a in aliases[live].items() if a is not None}
            state, _ = acquire(
                service, owner, live_versions=live_versions, run_is_active=dag_run_is_active, dry_run=True
            )
        except TransitionRefused as err:
            raise AirflowFailException(f"deployment refused: {err}") from err
        live, candidate = state.live, state.candidate
        missing = [name for name, alias in aliases[live].items() if alias is None]
        if missing:
            raise AirflowFailException(
                f"deployment refused: slot {live} takes the traffic but {missing} have no alias "
                f"{spec.slots[live].alias!r}; create it on the version in production, then retry"
            )
        try:
            actions = {r.name: resolve_release(self.lambdas, r, aliases[candidate][r.name]) for r in spec.functions}
        except LambdaReleaseError as err:
            raise AirflowFailException(f"deployment refused: {err}") from err
        return current, live_versions, actions

    @staticmethod
    def _live_guess(spec: DeploymentSpec, split: Mapping[str, int], state: Any, owner: str) -> str:
        """The slot whose versions the plan records as live: the state's when this run owns it."""
        if state is not None and state.owner == owner and state.active:
            return state.live
        with_traffic = [s.name for s in spec.slots.values() if split[s.set_identifier] > 0]
        if len(with_traffic) == 1:
            return with_traffic[0]
        return state.live if state is not None else next(iter(spec.slots))  # refused by acquire

    def _alarms_in_alarm(self, spec: DeploymentSpec) -> list[Any]:
        from bluegreen_provider.hooks.cloudwatch import UnknownAlarmError

        if not spec.alarms:
            return []
        try:
            return self.cloudwatch.alarms_in_alarm(list(spec.alarms))
        except UnknownAlarmError as err:
            raise AirflowFailException(f"deployment refused: {err}") from err

    @staticmethod
    def _excused(firing: list[Any], started_at: str, warnings: list[str]) -> list[dict[str, str]]:
        """Alarms in an ALARM episode that began before the deployment did: they say nothing against the
        release, so the analysis excuses exactly these episodes. Re-planning (a cleared plan) keeps the
        deployment's start, so an alarm the candidate raised is never excused."""
        started = datetime.fromisoformat(started_at) if started_at else datetime.now(UTC)
        excused, raised = [], []
        for alarm in firing:
            (excused if alarm.since is not None and alarm.since < started else raised).append(alarm)
        if excused:
            warnings.append(
                f"ALARMS ALREADY FIRING before this deployment: {', '.join(a.name for a in excused)}. The analysis "
                f"excuses exactly these episodes; a new episode of them, or any other alarm, still rolls back"
            )
        if raised:
            warnings.append(
                f"alarms in ALARM since this deployment began, not excused: {', '.join(a.name for a in raised)}"
            )
        return [{"name": a.name, "state": a.state, "reason": a.reason, "since": a.since.isoformat()} for a in excused]

    @staticmethod
    def _changes(
        plan: Plan, actions: Mapping[str, ReleaseAction], current: Mapping[str, AliasTarget | None]
    ) -> list[dict[str, str]]:
        """Every change the deployment would make, in order, for the dry run's report."""
        spec, live, candidate = plan.spec, plan.live, plan.candidate
        changes = [
            {
                "stage": "plan",
                "change": f"take ownership of {spec.service} in its state record (live slot {live})"
                + (f"; end the retention of {candidate}" if plan.replaces_retained else ""),
            }
        ]
        for name, action in actions.items():
            changes.append({"stage": "deploy_green", "change": action.describe(plan.candidate_alias, current[name])})
        if spec.prewarm_invocations:
            changes.append(
                {"stage": "deploy_green", "change": f"invoke each {plan.candidate_alias} {spec.prewarm_invocations}x"}
            )
        if spec.migrations:
            changes.append({"stage": "run_migrations", "change": f"apply migrations on {spec.migrations.conn_id}"})
        slot = spec.slots[candidate]
        check = (
            f"; create or reuse a Route53 health check on {slot.health_check_fqdn}{spec.health.path}, on set "
            f"{slot.set_identifier} only at the canary steps"
            if spec.health.route53_check and slot.health_check_fqdn
            else ""
        )
        changes.append(
            {
                "stage": "health_check",
                "change": f"require {spec.health.consecutive_successes} healthy probes of {candidate} within "
                f"{spec.health.deadline_seconds}s{check}",
            }
        )
        rule = f"roll back if error rate > {spec.error_rate_threshold_pct}% (>= {spec.min_requests} requests)"
        if spec.alarms:
            rule += f" or an alarm of {list(spec.alarms)} fires"
        ask = (
            f"wait up to {spec.approval_timeout_seconds}s for a manual approval "
            f"(on timeout: {spec.approval_timeout_policy})"
        )
        if spec.approval_mode == "auto":
            ask = "approve at once if every soak was clean and the candidate no worse than live, else " + ask
        from bluegreen_provider.routers import change_phrase

        how = change_phrase(spec)
        for step in spec.steps:
            weights = plan.describe_split(plan.weights_for(step.weight))
            if step.weight == 100:
                changes.append(
                    {
                        "stage": "approval",
                        "change": ask,
                    }
                )
                changes.append({"stage": "shift_100", "change": f"{how} {weights}; record the promotion"})
                changes.append(
                    {
                        "stage": "shift_100",
                        "change": f"retain {live} (versions {plan.live_versions}) for {spec.retention_seconds}s "
                        f"after promotion for emergency rollback",
                    }
                )
            else:
                changes.append({"stage": f"shift_{step.weight}", "change": f"{how} {weights}"})
                changes.append({"stage": f"soak_{step.weight}", "change": f"watch {step.soak_seconds}s; {rule}"})
        changes.append(
            {
                "stage": "teardown_blue",
                "change": f"when retention ends: delete {live}'s Route53 health check if any, prune Lambda "
                f"versions no alias uses (keep {spec.keep_versions} newest), clear the retention record",
            }
        )
        return changes

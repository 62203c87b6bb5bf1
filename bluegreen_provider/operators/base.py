"""What every deployment stage shares: the AWS connection, the hooks, and the run's plan."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.plan import Plan, PlanError
from bluegreen_provider.state import Phase, ServiceState, owner_of
from bluegreen_provider.triggers.route53 import Route53ChangeTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

    from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook
    from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.routers import TrafficRouter
    from bluegreen_provider.soak import WatchedSlot
    from bluegreen_provider.spec import DeploymentSpec

PLAN_TASK_ID = "plan"


class StageMixin:
    """Hooks and plan access for a stage; kept as a mixin so sensors and HITL operators can share it.

    A stage never trusts memory: it reads the plan the ``plan`` task stored in XCom for this run and
    reads AWS again for anything that may have moved since.
    """

    aws_conn_id: str | None
    region_name: str | None
    plan_task_id: str

    @cached_property
    def route53(self) -> Route53Hook:
        from bluegreen_provider.hooks.route53 import Route53Hook

        return Route53Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    @cached_property
    def lambdas(self) -> LambdaAliasHook:
        from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook

        return LambdaAliasHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    @cached_property
    def cloudwatch(self) -> CloudWatchMetricsHook:
        from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook

        return CloudWatchMetricsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def load_plan(self, context: Context) -> Plan:
        """This run's plan; a missing or unreadable one fails the task without retries."""
        try:
            return Plan.from_dict(context["ti"].xcom_pull(task_ids=self.plan_task_id))
        except PlanError as err:
            raise AirflowFailException(str(err)) from err

    def defer_until_insync(
        self, change_id: str, *, timeout_seconds: float, poll_interval: float, kwargs: dict[str, Any]
    ) -> NoReturn:
        """Wait for a Route53 change on the triggerer, then resume in ``execute_complete``.

        The task's own timeout is a little longer than the trigger's, so the trigger's timeout event
        (with the change id and its status) is what normally ends the wait.
        """
        self.defer(  # type: ignore[attr-defined]
            trigger=Route53ChangeTrigger(
                change_id=change_id,
                aws_conn_id=self.aws_conn_id,
                poll_interval=poll_interval,
                timeout_seconds=timeout_seconds,
            ),
            method_name="execute_complete",
            kwargs=kwargs,
            timeout=timedelta(seconds=timeout_seconds + max(60, 2 * poll_interval)),
        )

    def service_state(self, plan: Plan) -> ServiceState:
        return ServiceState(self.route53, plan.zone_id, plan.spec, lambdas=self.lambdas)

    def traffic_router(self, spec: DeploymentSpec, zone_id: str) -> TrafficRouter:
        """The router the service config names, through this stage's connection and region."""
        from bluegreen_provider.routers import make_router

        return make_router(spec, self.route53, zone_id, lambdas=self.lambdas)

    def candidate_serving(self, plan: Plan, slot: str | None = None) -> dict[str, str | None]:
        """Function -> version the slot's alias serves now (the candidate's by default)."""
        alias = plan.spec.slots[slot or plan.candidate].alias
        serving = {}
        for release in plan.spec.functions:
            target = self.lambdas.get_alias(release.name, alias)
            serving[release.name] = target.version if target else None
        return serving

    def watched(self, plan: Plan, slot: str) -> WatchedSlot:
        """The metrics of ``slot``; under the alias router, of the versions its slot alias serves now."""
        from bluegreen_provider.soak import slot_query

        versions = self.candidate_serving(plan, slot) if plan.spec.router == "lambda_alias" else None
        return slot_query(plan, slot, versions)

    def stopped_by_hand(self, context: Context, plan: Plan) -> str | None:
        """Why this run must stop, if a person rolled it back by hand (``bluegreen rollback``); else None.

        Read from the state record: after the emergency rollback the run never moves traffic again, so
        a verdict on what it watched, or a question about promoting it, would only mislead.
        """
        state = self.service_state(plan).state()
        if state is None or state.owner != self.run_owner(context) or state.phase != Phase.ABORTED:
            return None
        return (
            f"this deployment was rolled back by hand at {state.updated_at} ({state.reason}); it will not move "
            f"traffic again"
        )

    @staticmethod
    def run_owner(context: Context) -> str:
        return owner_of(context["dag_run"].dag_id, context["dag_run"].run_id)

    def read_split(self, plan: Plan) -> dict[str, int]:
        """The split as the service's router reads it now (percent by set identifier)."""
        return self.traffic_router(plan.spec, plan.zone_id).read_split()

    def propagated(self, plan: Plan, change_id: str) -> bool:
        """Whether a landed transition's traffic change reaches every client (Route53: INSYNC)."""
        return self.traffic_router(plan.spec, plan.zone_id).propagated(change_id)


class StageOperator(StageMixin, BaseOperator):
    """Base for the deployment stages: ``aws_conn_id``/``region_name`` as in the amazon provider.

    :param aws_conn_id: Airflow connection for AWS (``endpoint_url`` in its extra points at a sandbox).
    :param region_name: AWS region; Route53 is global, Lambda and CloudWatch are regional.
    :param plan_task_id: the task whose XCom holds this run's plan.
    """

    template_fields: Sequence[str] = ("aws_conn_id", "region_name")

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        plan_task_id: str = PLAN_TASK_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.plan_task_id = plan_task_id

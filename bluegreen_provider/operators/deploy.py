"""The deploy stage: publish each function's release and point the candidate slot's aliases at it.

Nothing here moves traffic; the candidate slot's Route53 weight is 0 when this runs. All functions
are released as one unit, so the candidate slot never serves a mix of old and new code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.operators.base import StageOperator
from bluegreen_provider.plan import Plan
from bluegreen_provider.release_actions import ReleaseAction, release_description, resolve_release
from bluegreen_provider.state import (
    ACTIVE,
    ServiceState,
    StateError,
    TransitionRefused,
    check_may_release,
    record_release,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from bluegreen_provider.spec import FunctionRelease


class DeployGreenOperator(StageOperator):
    """
    Release the new code into the candidate slot: one version per function, candidate aliases moved.

    Every input is checked before the first change (zip files, functions, explicit versions). If one
    function fails midway, the aliases already moved are put back where the plan found them, so the
    candidate slot is never half-released. Refuses to change code the candidate slot is serving to
    live traffic. Returns ``{"versions": {fn: {"version", "code_sha256", "reused"}}, "prewarm": ...}``.

    :param prewarm_concurrency: invocations in flight at once when ``spec.prewarm_invocations`` > 0.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields,)
    ui_color = "#c8e6c9"

    def __init__(self, *, prewarm_concurrency: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(prewarm_concurrency, bool) or not isinstance(prewarm_concurrency, int) or prewarm_concurrency < 1:
            raise ValueError(f"prewarm_concurrency must be an int >= 1, got {prewarm_concurrency!r}")
        self.prewarm_concurrency = prewarm_concurrency

    def execute(self, context: Context) -> dict[str, Any]:
        from bluegreen_provider.hooks.lambda_alias import LambdaReleaseError

        plan = self.load_plan(context)
        owner = self.run_owner(context)
        spec = plan.spec
        alias = plan.candidate_alias
        description = release_description(spec.service, owner, spec.release.label if spec.release else None)
        service = self.service_state(plan)

        # -- everything is read and checked before the first change --------------------------------
        try:
            for release in spec.functions:
                self.lambdas.require_function(release.name)
            current = {r.name: self.lambdas.get_alias(r.name, alias) for r in spec.functions}
            actions = {r.name: resolve_release(self.lambdas, r, current[r.name]) for r in spec.functions}
        except LambdaReleaseError as err:
            raise AirflowFailException(f"deploy_green refused before any change: {err}") from err
        try:
            check_may_release(service, owner)
        except TransitionRefused as err:
            if not self._already_released(service, owner, actions):
                raise AirflowFailException(f"deploy_green refused before any change: {err}") from err
            # A cleared deploy_green mid-rollout: this run's release is in place; nothing to change.
            self.log.info("The candidate already serves this run's release; nothing to change (%s)", err)
            kept = {n: {"version": a.version, "code_sha256": a.code_sha256, "reused": True} for n, a in actions.items()}
            result = {"slot": plan.candidate, "alias": alias, "versions": kept}
            if spec.prewarm_invocations:
                result["prewarm"] = self._prewarm(plan)
            return result
        except StateError as err:
            raise AirflowFailException(f"deploy_green refused before any change: {err}") from err
        split = self.read_split(plan)
        for name, action in actions.items():
            self.log.info("Release plan: %s", action.describe(alias, current[name]))

        # -- release all functions as one unit --------------------------------------------------------
        versions: dict[str, dict[str, Any]] = {}
        moved: list[str] = []
        for release in spec.functions:
            action = actions[release.name]
            try:
                version, sha, reused = self._release(release, action, description)
                self.lambdas.point_alias(release.name, alias, version, description=description)
            except Exception as err:
                restored = self._restore(plan, [*moved, release.name], owner)
                raise AirflowFailException(
                    f"releasing {release.name} into {plan.candidate} failed: {err}. Candidate aliases put back "
                    f"as the plan found them: {restored}. No traffic was moved ({plan.describe_split(split)})."
                ) from err
            moved.append(release.name)
            versions[release.name] = {"version": version, "code_sha256": sha, "reused": reused}
            self.log.info("%s:%s -> version %s (%s)", release.name, alias, version, "reused" if reused else "new")

        try:
            record_release(service, owner, {n: v["version"] for n, v in versions.items()})
        except TransitionRefused as err:
            raise AirflowFailException(
                f"released into {plan.candidate} (no traffic) but could not record it: {err}"
            ) from err
        result: dict[str, Any] = {"slot": plan.candidate, "alias": alias, "versions": versions}
        if spec.prewarm_invocations:
            result["prewarm"] = self._prewarm(plan)
        return result

    @staticmethod
    def _already_released(service: ServiceState, owner: str, actions: Mapping[str, ReleaseAction]) -> bool:
        """This run owns the service and recorded exactly the versions the candidate aliases already serve."""
        if any(a.action != "keep" for a in actions.values()):
            return False
        state = service.state()
        return (
            state is not None
            and state.owner == owner
            and state.phase in ACTIVE
            and state.versions.get(state.candidate) == {n: a.version for n, a in actions.items()}
        )

    def _release(self, release: FunctionRelease, action: ReleaseAction, description: str) -> tuple[str, str, bool]:
        """Publish if needed; returns (version, code_sha256, reused: no new version was published)."""
        if action.action != "publish":
            assert action.version is not None
            return action.version, action.code_sha256 or "", True
        before = {v.version for v in self.lambdas.list_versions(release.name)}
        published = self.lambdas.publish_code(
            release.name,
            zip_file=action.zip_bytes,
            s3_bucket=release.s3_bucket,
            s3_key=release.s3_key,
            image_uri=release.image_uri,
            description=description,
        )
        return published.version, published.code_sha256, published.version in before

    def _restore(self, plan: Plan, names: list[str], owner: str) -> dict[str, str]:
        """Put candidate aliases back to ``plan.candidate_versions_before``; never raises."""
        restored: dict[str, str] = {}
        for name in names:
            before = plan.candidate_versions_before.get(name)
            try:
                now = self.lambdas.get_alias(name, plan.candidate_alias)
                if before is None:
                    restored[name] = (
                        f"alias created by this run left at version {now.version if now else '?'} (takes no traffic)"
                    )
                elif now is None or now.version != before:
                    self.lambdas.point_alias(
                        name, plan.candidate_alias, before, description=f"restored by {owner} after a failed release"
                    )
                    restored[name] = f"version {before}"
                else:
                    restored[name] = f"version {before} (unchanged)"
            except Exception as err:
                self.log.exception("Could not restore %s:%s", name, plan.candidate_alias)
                restored[name] = f"NOT restored ({err}); point it back to version {before} by hand"
        return restored

    def _prewarm(self, plan: Plan) -> dict[str, Mapping[str, Any]]:
        """Warm the candidate's execution environments; errors are reported, the health stage judges."""
        report: dict[str, Mapping[str, Any]] = {}
        for release in plan.spec.functions:
            result = self.lambdas.prewarm(
                release.name,
                plan.candidate_alias,
                invocations=plan.spec.prewarm_invocations,
                concurrency=self.prewarm_concurrency,
            )
            report[release.name] = {
                "invocations": result.invocations,
                "errors": result.errors,
                "max_duration_ms": round(result.max_duration_ms, 1),
            }
            if result.errors:
                self.log.warning(
                    "Prewarm of %s:%s: %d of %d invocations failed",
                    release.name,
                    plan.candidate_alias,
                    result.errors,
                    result.invocations,
                )
        return report

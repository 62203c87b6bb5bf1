from __future__ import annotations

import json

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, DownstreamTasksSkipped

from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.operators import plan as plan_module
from bluegreen_provider.operators.plan import PlanDeploymentOperator
from bluegreen_provider.spec import DeploymentSpec, SpecError
from bluegreen_provider.state import Phase


def test_plan_resolves_live_and_candidate_and_takes_the_service(world, new_run, stages):
    run = new_run("run1")
    result = run.execute(stages.plan(world.spec()))
    assert (result["live"], result["candidate"]) == ("blue", "green")
    assert result["zone_id"] == world.zone_id
    assert result["split_before"] == {"blue": 100, "green": 0}
    assert result["live_versions"] == {fn: "1" for fn in world.functions}
    assert result["candidate_versions_before"] == {fn: "1" for fn in world.functions}
    assert result["resumed"] is False and result["alarms_firing"] == []
    state = world.state()
    assert state.owner == "bluegreen_deploy/run1"
    assert (state.phase, state.live, state.candidate) == (Phase.PLANNED, "blue", "green")
    assert state.generation == result["generation"] == 1
    assert state.split == {"blue": 100, "green": 0} == world.split()
    assert state.versions == {"blue": {fn: "1" for fn in world.functions}}


def test_three_releases_alternate_colours(world, new_run, stages):
    seen = []
    for i, release in enumerate(("v2", "bad", "v1"), start=1):
        run = new_run(f"run{i}")
        plan = stages.release(run, world.spec(release), upto=(10, 50, 100))
        seen.append((plan["live"], plan["candidate"]))
        candidate = plan["candidate"]
        assert world.split() == {candidate: 100, plan["live"]: 0}
        for fn in world.functions:
            assert world.versions(fn)[world.alias(fn, candidate)] == world.sha[release]
        state = world.state()
        assert state.owner == run.owner and not state.active
        assert (state.phase, state.live, state.generation) == (Phase.RETAINED, candidate, 5 * i)
        assert state.retained.slot == plan["live"] and state.retained.owner == run.owner
        assert state.split == world.split()
        if i > 1:
            assert plan["replaces_retained"]["owner"] == f"bluegreen_deploy/run{i - 1}"
    assert seen == [("blue", "green"), ("green", "blue"), ("blue", "green")]


@pytest.mark.parametrize(
    ("setup", "overrides", "message"),
    [
        (
            lambda w: w.set_split(50, 50),
            {},
            r"split blue 50 / green 50: both slots take traffic and no deployment owns it",
        ),
        (lambda w: w.set_split(0, 0), {}, r"split blue 0 / green 0: no slot is live"),
        (
            None,
            {"hosted_zone": "lego-bricks.com", "record_name": "api.lego-bricks.com"},
            r"No hosted zone named 'lego-bricks.com'",
        ),
        (None, {"record_name": "www.lego-mocs.com"}, r"No weighted A record sets named 'www.lego-mocs.com'"),
        (
            None,
            {
                "slots": {
                    "blue": {"set_identifier": "blue", "alias": "production-blue"},
                    "green": {"set_identifier": "teal", "alias": "production-green"},
                }
            },
            r"Weighted set\(s\) \['teal'\] not found",
        ),
        (None, {"functions": [{"name": "lego-api-mocz", "version": "1"}]}, r"'lego-api-mocz' not found"),
        (
            lambda w: w.lam.delete_alias(FunctionName="lego-api-gallery", Name="production-blue"),
            {},
            r"\['lego-api-gallery'\] have no alias 'production-blue'",
        ),
        (None, {"functions": [{"name": "lego-api-mocs", "version": "7"}]}, r"Version '7' of 'lego-api-mocs' not found"),
        (
            None,
            {"functions": [{"name": "lego-api-mocs", "zip_file": "/nope/v9.zip"}]},
            r"'/nope/v9.zip' does not exist",
        ),
        (None, {"alarms": ["lego-api-5xxx"]}, r"lego-api-5xxx"),
        (None, {"steps": [{"weight": 50}, {"weight": 10}]}, r"weights must strictly increase"),
    ],
)
def test_plan_refuses_with_state_unchanged(world, new_run, stages, setup, overrides, message):
    if setup:
        setup(world)
    before = world.snapshot()
    op = PlanDeploymentOperator(task_id="plan", spec=json.dumps(world.spec(**overrides)))
    with pytest.raises(AirflowFailException, match=message):
        new_run("run1").execute(op)
    assert world.snapshot() == before


def test_literal_spec_and_dry_run_are_checked_when_the_dag_is_parsed(world):
    with pytest.raises(SpecError, match="service is required"):
        PlanDeploymentOperator(task_id="plan", spec={"hosted_zone": "x", "record_name": "y"})
    with pytest.raises(ValueError, match="dry_run"):
        PlanDeploymentOperator(task_id="plan", spec=world.spec(), dry_run="perhaps")
    templated = PlanDeploymentOperator(task_id="plan", spec="{{ params.spec }}", dry_run="{{ params.dry_run }}")
    assert {"spec", "dry_run", "aws_conn_id", "region_name"} <= set(templated.template_fields)


def test_dry_run_changes_nothing_lists_changes_and_skips_downstream(world, new_run):
    from airflow.providers.standard.operators.empty import EmptyOperator

    world.set_split(100, 0)
    with DAG("bluegreen_deploy", schedule=None):
        op = PlanDeploymentOperator(task_id="plan", spec=world.spec(), dry_run="true")
        deploy = EmptyOperator(task_id="deploy_green")
        shift = EmptyOperator(task_id="shift_10")
        rollback = EmptyOperator(task_id="rollback")
        op >> deploy >> shift >> rollback
    before = world.snapshot()
    run = new_run("dry")
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        run.execute(op)
    assert sorted(skipped.value.tasks) == ["deploy_green", "rollback", "shift_10"]
    assert world.snapshot() == before
    result = run.xcom("plan")
    assert (result["live"], result["candidate"]) == ("blue", "green")
    changes = [f"{c['stage']}: {c['change']}" for c in result["changes"]]
    for fn in world.functions:
        assert any(c.startswith(f"deploy_green: {fn}: publish a new version") and world.sha["v2"] in c for c in changes)
    assert "shift_10: set Route53 weights blue 90 / green 10" in changes
    assert "shift_50: set Route53 weights blue 50 / green 50" in changes
    assert "shift_100: set Route53 weights blue 0 / green 100; record the promotion" in changes
    assert any(c.startswith("plan: take ownership of lego-api in its state record (live slot blue)") for c in changes)
    assert any(c.startswith("approval:") for c in changes)
    assert any(c.startswith("teardown_blue:") for c in changes)


def test_dry_run_reports_reuse_when_the_code_is_already_there(world, new_run, stages):
    result = new_run("dry").execute(stages.plan(world.spec("v1"), dry_run=True))
    deploys = [c["change"] for c in result["changes"] if c["stage"] == "deploy_green"]
    assert deploys == [
        f"{fn}: production-green already serves version 1 with this code; keep it" for fn in world.functions
    ]
    assert world.state() is None


def test_second_run_is_refused_while_the_first_owns_the_service(world, new_run, stages, monkeypatch):
    monkeypatch.setattr(plan_module, "dag_run_is_active", lambda owner: True)
    new_run("run1").execute(stages.plan(world.spec()))
    before = world.snapshot()
    with pytest.raises(AirflowFailException, match="another deployment owns this service: run bluegreen_deploy/run1 "):
        new_run("run2").execute(stages.plan(world.spec()))
    assert world.snapshot() == before
    assert world.state().owner == "bluegreen_deploy/run1"


def test_a_finished_run_is_taken_over(world, new_run, stages, monkeypatch):
    monkeypatch.setattr(plan_module, "dag_run_is_active", lambda owner: False)
    new_run("run1").execute(stages.plan(world.spec()))
    result = new_run("run2").execute(stages.plan(world.spec()))
    assert result["live"] == "blue"
    assert any("took over from bluegreen_deploy/run1" in w for w in result["warnings"])
    state = world.state()
    assert (state.owner, state.phase, state.generation) == ("bluegreen_deploy/run2", Phase.PLANNED, 2)


def test_rerun_after_traffic_moved_resumes_with_the_same_live_slot(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec(), upto=(10, 50))
    assert world.split() == {"blue": 50, "green": 50}
    result = run.execute(stages.plan(world.spec()))
    assert (result["live"], result["candidate"], result["resumed"]) == ("blue", "green", True)
    assert result["split_before"] == {"blue": 50, "green": 50}
    state = world.state()
    assert (state.owner, state.phase, state.generation) == (run.owner, Phase.SHIFTING, result["generation"])
    before = world.snapshot()
    with pytest.raises(
        AirflowFailException,
        match=r"another deployment owns this service: run bluegreen_deploy/run1 .* with traffic at "
        r"blue 50 / green 50\. Wait for it to finish, or roll it back",
    ):
        new_run("run2").execute(stages.plan(world.spec()))
    assert world.snapshot() == before


def test_alarms_already_firing_are_recorded_not_refused(world, new_run, stages):
    world.alarm("lego-api-5xx", "ALARM")
    world.alarm("lego-api-latency", "OK")
    result = new_run("run1").execute(stages.plan(world.spec(alarms=["lego-api-5xx", "lego-api-latency"])))
    assert [a["name"] for a in result["alarms_firing"]] == ["lego-api-5xx"]
    assert any("ALARMS ALREADY FIRING" in w for w in result["warnings"])


def test_dag_run_is_active_asks_airflow(monkeypatch):
    from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    lock = "bluegreen_deploy/run1"
    # Outside a task process there is no API server to ask: never take a service on a guess.
    assert plan_module.dag_run_is_active(lock) is True

    def state(value):
        return staticmethod(lambda dag_id, run_id: value)

    for value, active in (("running", True), ("queued", True), ("failed", False), ("success", False)):
        monkeypatch.setattr(RuntimeTaskInstance, "get_dagrun_state", state(value))
        assert plan_module.dag_run_is_active(lock) is active

    def missing(dag_id, run_id):
        raise AirflowRuntimeError(ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={"status_code": 404}))

    monkeypatch.setattr(RuntimeTaskInstance, "get_dagrun_state", staticmethod(missing))
    assert plan_module.dag_run_is_active(lock) is False


def test_plan_round_trips_through_plan_from_dict(world, new_run, stages):
    from bluegreen_provider.plan import Plan

    result = new_run("run1").execute(stages.plan(world.spec()))
    plan = Plan.from_dict(result)
    assert plan.spec == DeploymentSpec.from_dict(world.spec())
    assert Route53Hook().get_split(plan.zone_id, plan.spec.record_name, "A", ["blue", "green"]) == plan.split_before

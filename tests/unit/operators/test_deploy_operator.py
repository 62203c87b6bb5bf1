from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook

MOCS, GALLERY = "lego-api-mocs", "lego-api-gallery"


def test_deploy_publishes_points_green_and_is_idempotent(world, new_run, stages):
    run = new_run("run1")
    run.execute(stages.plan(world.spec("v2")))
    result = run.execute(stages.deploy())
    assert result["versions"] == {
        fn: {"version": "2", "code_sha256": world.sha["v2"], "reused": False} for fn in world.functions
    }
    assert world.aliases("green") == {fn: "2" for fn in world.functions}
    assert world.aliases("blue") == {fn: "1" for fn in world.functions}
    assert world.split() == {"blue": 100, "green": 0}
    desc = world.lam.get_alias(FunctionName=MOCS, Name="production-green")["Description"]
    assert "bluegreen_deploy/run1" in desc

    again = run.execute(stages.deploy())
    assert {v["version"] for v in again["versions"].values()} == {"2"}
    assert all(v["reused"] for v in again["versions"].values())
    assert {fn: sorted(world.versions(fn)) for fn in world.functions} == {fn: ["1", "2"] for fn in world.functions}


def test_deploy_reuses_an_existing_version_with_the_same_code(world, new_run, stages):
    for fn in world.functions:
        world.lam.update_function_code(FunctionName=fn, ZipFile=world.zips["v2"].read_bytes())
        world.lam.publish_version(FunctionName=fn)  # version 2 = v2
        world.lam.update_function_code(FunctionName=fn, ZipFile=world.zips["bad"].read_bytes())
        world.lam.publish_version(FunctionName=fn)  # version 3 = bad (the newest)
    run = new_run("run1")
    run.execute(stages.plan(world.spec("v2")))
    result = run.execute(stages.deploy())
    assert result["versions"][MOCS] == {"version": "2", "code_sha256": world.sha["v2"], "reused": True}
    assert world.aliases("green") == {fn: "2" for fn in world.functions}
    assert sorted(world.versions(MOCS)) == ["1", "2", "3"]


def test_deploy_uses_an_explicit_version(world, new_run, stages):
    world.lam.update_function_code(FunctionName=MOCS, ZipFile=world.zips["v2"].read_bytes())
    world.lam.publish_version(FunctionName=MOCS)
    spec = world.spec(functions=[{"name": MOCS, "version": "2"}, {"name": GALLERY, "version": "1"}])
    run = new_run("run1")
    run.execute(stages.plan(spec))
    result = run.execute(stages.deploy())
    assert result["versions"][MOCS] == {"version": "2", "code_sha256": world.sha["v2"], "reused": True}
    assert result["versions"][GALLERY]["version"] == "1"
    assert world.aliases("green") == {MOCS: "2", GALLERY: "1"}


def test_deploy_checks_inputs_before_any_change(world, new_run, stages):
    run = new_run("run1")
    run.execute(stages.plan(world.spec("v2")))
    world.zips["v2"].unlink()  # removed between plan and deploy
    before = world.snapshot()
    with pytest.raises(AirflowFailException, match=r"refused before any change: .*v2.zip' does not exist"):
        run.execute(stages.deploy())
    assert world.snapshot() == before


def test_deploy_refuses_to_change_code_under_live_traffic(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec("v2"), upto=(10,))  # green takes 10 % through the real shift
    plan = run.xcom("plan")
    bad = {**plan["spec"], "functions": [{"name": fn, "zip_file": str(world.zips["bad"])} for fn in world.functions]}
    run.put("plan", {**plan, "spec": bad})  # a different release would land in the slot under traffic
    before = world.snapshot()
    with pytest.raises(
        AirflowFailException,
        match=r"refused before any change: refusing to change slot green: it takes live traffic "
        r"\(blue 90 / green 10\).*roll back first",
    ):
        run.execute(stages.deploy())
    assert world.snapshot() == before
    assert world.aliases("green") == {fn: "2" for fn in world.functions}


def test_deploy_under_live_traffic_is_fine_when_nothing_changes(world, new_run, stages):
    run = new_run("run1")
    stages.release(run, world.spec("v2"), upto=(10,))
    before = world.snapshot()
    result = run.execute(stages.deploy())  # a cleared deploy_green re-running mid-rollout
    assert {v["version"] for v in result["versions"].values()} == {"2"}
    assert all(v["reused"] for v in result["versions"].values())
    assert world.split() == {"blue": 90, "green": 10}
    assert world.snapshot() == before  # no alias moved, no version published, the state not rewritten


def test_deploy_records_the_release_in_the_state(world, new_run, stages):
    run = new_run("run1")
    run.execute(stages.plan(world.spec("v2")))
    generation = world.state().generation
    run.execute(stages.deploy())
    state = world.state()
    assert (state.owner, state.phase, state.generation) == (run.owner, "planned", generation + 1)
    assert state.versions == {"blue": {fn: "1" for fn in world.functions}, "green": {fn: "2" for fn in world.functions}}
    assert state.split == world.split() == {"blue": 100, "green": 0}


def test_functions_are_released_as_one_unit(world, new_run, stages, monkeypatch):
    run = new_run("run1")
    run.execute(stages.plan(world.spec("v2")))
    original = LambdaAliasHook.point_alias

    def failing(self, function_name, alias, version, *, description=""):
        if function_name == GALLERY and version != "1":
            raise RuntimeError("throttled: Rate exceeded")
        return original(self, function_name, alias, version, description=description)

    monkeypatch.setattr(LambdaAliasHook, "point_alias", failing)
    with pytest.raises(AirflowFailException, match=r"releasing lego-api-gallery .* throttled.*put back"):
        run.execute(stages.deploy())
    assert world.aliases("green") == {MOCS: "1", GALLERY: "1"}
    assert world.split() == {"blue": 100, "green": 0}


def test_deploy_prewarms_the_candidate(world, new_run, stages, monkeypatch):
    invoked: list[tuple[str, str]] = []
    original = LambdaAliasHook.invoke_lambda

    def spy(self, *, function_name, qualifier, **kwargs):
        invoked.append((function_name, qualifier))
        return original(self, function_name=function_name, qualifier=qualifier, **kwargs)

    monkeypatch.setattr(LambdaAliasHook, "invoke_lambda", spy)
    run = new_run("run1")
    run.execute(stages.plan(world.spec("v2", prewarm_invocations=2)))
    result = run.execute(stages.deploy(prewarm_concurrency=2))
    assert result["prewarm"][MOCS]["invocations"] == 2
    assert set(result["prewarm"]) == set(world.functions)
    # Only the candidate (green) is warmed; the live alias is never invoked.
    assert sorted(invoked) == sorted((fn, "production-green") for fn in world.functions for _ in range(2))


def test_deploy_without_a_plan_fails_clearly(world, new_run, stages):
    with pytest.raises(AirflowFailException, match="the 'plan' task must run first"):
        new_run("run1").execute(stages.deploy())


def test_deploy_validates_its_arguments():
    from bluegreen_provider.operators.deploy import DeployGreenOperator

    with pytest.raises(ValueError, match="prewarm_concurrency"):
        DeployGreenOperator(task_id="deploy_green", prewarm_concurrency=0)

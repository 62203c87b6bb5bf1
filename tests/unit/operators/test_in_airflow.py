"""The stages inside a real ``dag.test()`` run: task SDK calls, callbacks, skips and the run's final state."""

from __future__ import annotations

import json
import textwrap

import pytest

DAG_FILE = textwrap.dedent(
    """
    import json, os
    from airflow.sdk import DAG
    from airflow.providers.standard.operators.python import PythonOperator
    from bluegreen_provider.operators.deploy import DeployGreenOperator
    from bluegreen_provider.operators.plan import PlanDeploymentOperator
    from bluegreen_provider.operators.rollback import RollbackOperator
    from bluegreen_provider.operators.traffic import ShiftWeightOperator
    from bluegreen_provider.rollback import rollback_on_failure

    def soak():
        raise RuntimeError("error rate 9.0% > 5.0% over 200 requests")

    with DAG("bluegreen_stages", schedule=None, default_args={"on_failure_callback": rollback_on_failure}) as dag:
        plan = PlanDeploymentOperator(task_id="plan", spec=SPEC, dry_run=DRY_RUN)
        deploy = DeployGreenOperator(task_id="deploy_green")
        shift = ShiftWeightOperator(task_id="shift_10", candidate_pct=10)
        soak_10 = PythonOperator(task_id="soak_10", python_callable=soak)
        rollback = RollbackOperator(task_id="rollback")
        plan >> deploy >> shift >> soak_10
        # As the DAG factory wires it: the rollback is the run's teardown.
        [deploy, shift, soak_10] >> rollback.as_teardown(setups=plan)
    """
)


def _run(world, tmp_path, monkeypatch, *, dry_run: bool):
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path / "dags"
    folder.mkdir()
    source = DAG_FILE.replace("SPEC", json.dumps(world.spec())).replace("DRY_RUN", str(dry_run))
    (folder / "bluegreen_stages.py").write_text(source)
    from airflow import settings

    # dag.test() runs what the dags-folder bundle serializes; point it at this test's folder only.
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(folder))
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors
    run = bag.get_dag("bluegreen_stages").test()
    return run.state, {ti.task_id: ti.state for ti in run.get_task_instances()}


@pytest.mark.usefixtures("airflow_db")
def test_failed_soak_rolls_back_and_the_run_fails(world, tmp_path, monkeypatch):
    state, tasks = _run(world, tmp_path, monkeypatch, dry_run=False)
    assert tasks == {
        "plan": "success",
        "deploy_green": "success",
        "shift_10": "success",
        "soak_10": "failed",
        "rollback": "success",  # the teardown restored traffic (the callback sent it) and confirmed it
    }
    assert state == "failed"  # the run still fails: a stage failed
    assert world.split() == {"blue": 100, "green": 0}
    assert world.aliases("green") == {fn: "2" for fn in world.functions}
    deployment = world.state()
    assert deployment.owner.startswith("bluegreen_stages/manual__")
    assert (deployment.phase, deployment.live, deployment.split) == ("rolled_back", "blue", world.split())
    assert deployment.reason.startswith("soak_10 failed: error rate 9.0% > 5.0%")
    assert world.tags() == {}


@pytest.mark.usefixtures("airflow_db")
def test_dry_run_skips_everything_downstream(world, tmp_path, monkeypatch):
    before = world.snapshot()
    state, tasks = _run(world, tmp_path, monkeypatch, dry_run=True)
    assert state == "success"
    assert tasks == {
        "plan": "success",
        "deploy_green": "skipped",
        "shift_10": "skipped",
        "soak_10": "skipped",
        "rollback": "skipped",
    }
    assert world.snapshot() == before

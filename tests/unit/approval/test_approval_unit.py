"""ApprovalSensor and HoldOperator called directly, the amazon-provider way, against moto."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TriggerRule
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowSkipException,
    DownstreamTasksSkipped,
    TaskAwaitingInput,
)

from bluegreen_provider.sensors.approval import ApprovalSensor, HoldOperator, duration

SOAK_50 = {
    "requests": 1200.0,
    "errors": 6.0,
    "rate_pct": 0.5,
    "max_rate_pct": 1.25,
    "alarms_seen": [],
    "outcome": "clean",
}


class FakeTI:
    """Just enough of a RuntimeTaskInstance: XCom by (task_id, key) and the approval's state."""

    def __init__(self, xcoms: dict, states: dict | None = None):
        self.id = uuid.uuid4()
        self.map_index = -1
        self.xcoms = dict(xcoms)
        self.pushed: dict = {}
        self.states = states or {}

    def xcom_pull(self, task_ids: str, key: str = "return_value", **_):
        return self.xcoms.get((task_ids, key))

    def xcom_push(self, key: str, value) -> None:
        self.pushed[key] = value

    def get_task_states(self, dag_id: str, task_ids: list[str], run_ids: list[str]) -> dict:
        return {run_ids[0]: {t: self.states[t] for t in task_ids if t in self.states}}


def context_for(ti: FakeTI) -> dict:
    return {"ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(dag_id="deploy", run_id="manual__1")}


def build_dag(**approval_kwargs) -> DAG:
    """The story's tail: soaks -> approval -> shift_100 -> teardown_blue; hold; rollback on failure."""
    with DAG(dag_id="deploy", schedule=None) as dag:
        soaks = [EmptyOperator(task_id="soak_10"), EmptyOperator(task_id="soak_50")]
        approval = ApprovalSensor(task_id="approval", **approval_kwargs)
        shift = EmptyOperator(task_id="shift_100")
        # A teardown that would run after a skipped promotion: the refusal must skip it directly.
        teardown = EmptyOperator(task_id="teardown_blue", trigger_rule=TriggerRule.NONE_FAILED)
        hold = HoldOperator(task_id="hold")
        rollback = EmptyOperator(task_id="rollback", trigger_rule=TriggerRule.ONE_FAILED)
        finish = EmptyOperator(task_id="fail_run_after_rollback")
        soaks >> approval >> shift >> teardown
        approval >> hold
        [approval, shift, teardown] >> rollback >> finish
    return dag


# -- construction ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"options": ["Yes"]}, "builds"),
        ({"defaults": "Approve"}, "builds"),
        ({"promote_task_ids": "shift_100"}, "list of task ids"),
        ({"promote_task_ids": ()}, "at least one"),
        ({"timeout_policy": "wait"}, "timeout_policy"),
        ({"response_timeout": timedelta(0)}, "positive timedelta"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ApprovalSensor(task_id="approval", **kwargs)


def test_hold_defaults_to_all_done():
    assert HoldOperator(task_id="hold").trigger_rule == TriggerRule.ALL_DONE


def test_duration_reads_like_speech():
    assert [duration(s) for s in (86400, 5400, 90, 0.4)] == ["1d", "1h 30m", "1m 30s", "0s"]


# -- the request ----------------------------------------------------------------------------------
def test_request_shows_evidence_read_back_from_aws(world, upsert):
    dag = build_dag()
    ti = FakeTI({("plan", "return_value"): world.plan(), ("soak_50", "return_value"): SOAK_50})
    with pytest.raises(TaskAwaitingInput) as parked:
        dag.get_task("approval").execute(context_for(ti))

    # The spec's 24 h default becomes the response deadline.
    assert parked.value.timeout == timedelta(hours=24)
    sent = upsert.call_args.kwargs
    assert sent["options"] == ["Approve", "Reject"]
    assert sent["defaults"] is None
    assert sent["subject"] == "Promote lego-api green to 100 %?"
    body = sent["body"]
    assert "blue 50 / green 50: green has 50 % of requests" in body
    assert "| `lego-moc` | 1 | 2 |" in body
    assert "| `lego-gallery` | 1 | 2 |" in body
    assert "#### `soak_50`: clean\n" in body
    assert "| Requests | 1200 | — |\n| Errors | 6 | — |\n| Error rate | 0.5 % | — |" in body
    assert "Candidate's max window rate 1.25 %; alarms seen: none." in body
    assert "#### `soak_10`: no summary recorded" in body
    assert "Firing when the deployment was planned: `lego-api-latency`" in body
    assert "Firing now: `lego-api-5xx`" in body
    assert "`bluegreen rollback --service lego-api`" in body
    assert "policy `hold`" in body
    request = ti.pushed["request"]
    assert request["split"] == {"blue": 50, "green": 50}
    assert request["versions"]["lego-moc"] == {"blue": "1", "green": "2"}
    assert request["alarms_firing"] == ["lego-api-5xx"]
    assert request["timeout_policy"] == "hold"


def test_operator_timeout_and_policy_override_the_spec(world, upsert):
    dag = build_dag(response_timeout=timedelta(minutes=30), timeout_policy="rollback")
    ti = FakeTI({("plan", "return_value"): world.plan(approval_timeout_seconds=0)})
    with pytest.raises(TaskAwaitingInput) as parked:
        dag.get_task("approval").execute(context_for(ti))
    assert parked.value.timeout == timedelta(minutes=30)
    assert "the deployment rolls back (policy `rollback`)" in upsert.call_args.kwargs["body"]


def test_spec_timeout_zero_means_no_deadline(world, upsert):
    dag = build_dag()
    ti = FakeTI({("plan", "return_value"): world.plan(approval_timeout_seconds=0)})
    with pytest.raises(TaskAwaitingInput) as parked:
        dag.get_task("approval").execute(context_for(ti))
    assert parked.value.timeout is None
    assert ti.pushed["request"]["deadline"] is None


def test_misnamed_promote_task_fails_before_asking(world, upsert):
    dag = build_dag(promote_task_ids=("shift_100", "shift_full"), evidence_task_ids=("soak_99",))
    ti = FakeTI({("plan", "return_value"): world.plan()})
    with pytest.raises(AirflowFailException, match=r"'shift_full' is not downstream.*'soak_99' is not in DAG"):
        dag.get_task("approval").execute(context_for(ti))
    upsert.assert_not_called()
    assert ti.pushed == {}


def test_no_plan_is_a_clear_error(upsert):
    dag = build_dag()
    with pytest.raises(AirflowFailException, match="'plan' task must run first"):
        dag.get_task("approval").execute(context_for(FakeTI({})))
    upsert.assert_not_called()


# -- the answer -----------------------------------------------------------------------------------
def response(choice: str, name: str = "alice") -> dict:
    return {
        "chosen_options": [choice],
        "params_input": {},
        "responded_at": datetime(2026, 11, 26, 12, 3, 4, tzinfo=UTC),
        "responded_by_user": {"id": "u-1", "name": name},
        "timedout": False,
    }


def test_approve_records_who_and_when(world):
    dag = build_dag()
    ti = FakeTI({("plan", "return_value"): world.plan()})
    record = dag.get_task("approval").execute_complete(context_for(ti), response("Approve"))
    assert record == {
        "decision": "approve",
        "by": "alice",
        "user": {"id": "u-1", "name": "alice"},
        "at": "2026-11-26T12:03:04+00:00",
        "via": "response",
    }
    assert "skipmixin_key" not in ti.pushed


def test_reject_skips_promotion_and_its_downstream_only(world):
    dag = build_dag()
    ti = FakeTI({("plan", "return_value"): world.plan()})
    # The task runner turns this into "skip these tasks, mark me success".
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        dag.get_task("approval").execute_complete(context_for(ti), response("Reject", "bob"))
    # Not hold, not the rollback nor what follows it.
    assert set(skipped.value.tasks) == {"shift_100", "teardown_blue"}
    # Pushed before the skip ends the method, or the decision would be lost.
    record = ti.pushed["return_value"]
    assert record["decision"] == "reject"
    assert record["by"] == "bob"
    assert record["via"] == "response"


def test_invalid_option_is_refused(world):
    dag = build_dag()
    ti = FakeTI({("plan", "return_value"): world.plan()})
    with pytest.raises(ValueError, match="not in"):
        dag.get_task("approval").execute_complete(context_for(ti), response("Maybe"))
    assert ti.pushed == {}


TIMEOUT_EVENT = {"error": "The Human-in-the-loop response timeout has passed", "error_type": "timeout"}


def test_timeout_with_hold_policy_acts_as_reject(world):
    dag = build_dag(response_timeout=timedelta(hours=2))
    ti = FakeTI({("plan", "return_value"): world.plan()})
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        dag.get_task("approval").execute_complete(context_for(ti), TIMEOUT_EVENT)
    assert set(skipped.value.tasks) == {"shift_100", "teardown_blue"}
    record = ti.pushed["return_value"]
    assert record["decision"] == "reject"
    assert record["via"] == "timeout"
    assert record["by"] is None
    assert record["timeout_seconds"] == 7200


def test_timeout_with_rollback_policy_fails_the_gate(world):
    dag = build_dag()
    ti = FakeTI({("plan", "return_value"): world.plan(approval_timeout_policy="rollback")})
    with pytest.raises(AirflowFailException, match=r"timed out after 1d .*rolling back lego-api to blue"):
        dag.get_task("approval").execute_complete(context_for(ti), TIMEOUT_EVENT)
    assert ti.pushed["return_value"]["decision"] == "rollback"
    assert "skipmixin_key" not in ti.pushed


# -- the hold -------------------------------------------------------------------------------------
def hold_ti(world, record, state="success") -> FakeTI:
    return FakeTI(
        {("plan", "return_value"): world.plan(), ("approval", "return_value"): record},
        states={"approval": state},
    )


def test_hold_fails_with_the_split_and_the_ways_forward(world):
    before = world.deployed_to_50("deploy/manual__1")
    record = {"decision": "reject", "by": "alice", "at": "2026-11-26T12:03:04+00:00", "via": "response"}
    with pytest.raises(AirflowFailException) as held:
        build_dag().get_task("hold").execute(context_for(hold_ti(world, record)))
    message = str(held.value)
    assert message.startswith(
        "HELD at blue 50 / green 50: rejected by alice at 2026-11-26 12:03:04 UTC. Traffic stays split."
    )
    assert "clear 'approval' with its downstream tasks and approve" in message
    assert "trigger the bluegreen_rollback DAG or run `bluegreen rollback --service lego-api`" in message
    after = world.state()
    assert message.endswith(f"lego-api is held by deploy/manual__1 (generation {before.generation + 1}).")
    assert (after.phase, after.owner, after.generation) == ("held", "deploy/manual__1", before.generation + 1)
    assert after.reason == "held: rejected by alice at 2026-11-26 12:03:04 UTC"
    assert after.split == {"blue": 50, "green": 50}
    assert world.split() == {"blue": 50, "green": 50}


def test_hold_without_a_deployment_state_still_says_where_traffic_is(world):
    record = {"decision": "reject", "by": "alice", "at": "2026-11-26T12:03:04+00:00", "via": "response"}
    with pytest.raises(AirflowFailException) as held:
        build_dag().get_task("hold").execute(context_for(hold_ti(world, record)))
    message = str(held.value)
    assert message.startswith("HELD at blue 50 / green 50: rejected by alice")
    assert "Not recorded as held: lego-api has no deployment state record" in message
    assert world.state() is None
    assert world.split() == {"blue": 50, "green": 50}


def test_hold_after_timeout_says_so(world):
    record = {"decision": "reject", "by": None, "via": "timeout", "timeout_seconds": 5400}
    with pytest.raises(AirflowFailException, match="HELD at blue 50 / green 50: approval timed out after 1h 30m"):
        build_dag().get_task("hold").execute(context_for(hold_ti(world, record)))


@pytest.mark.parametrize(
    ("record", "state", "reason"),
    [
        ({"decision": "approve", "by": "alice", "at": "2026-11-26T12:03:04+00:00"}, "success", "approved by alice"),
        (None, "success", "marked success without an answer"),
        ({"decision": "rollback", "via": "timeout"}, "failed", "ended failed"),
        (None, "upstream_failed", "ended upstream_failed"),
    ],
)
def test_hold_skips_when_nothing_is_held(world, record, state, reason):
    with pytest.raises(AirflowSkipException, match=reason):
        build_dag().get_task("hold").execute(context_for(hold_ti(world, record, state)))

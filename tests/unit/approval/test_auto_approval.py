"""approval_mode "auto": the rule, the gate that applies it, and the places its record is shown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk.definitions.param import ParamValidationError
from airflow.sdk.exceptions import AirflowSkipException, TaskAwaitingInput

from bluegreen_provider import approval_rule
from bluegreen_provider.dag_factory import deployment_dag
from bluegreen_provider.operators.traffic import ShiftWeightOperator
from bluegreen_provider.plan import Plan
from bluegreen_provider.spec import DeploymentSpec, SpecError
from bluegreen_provider.ui.timeline import describe_stage

from .evidence import MARGINAL, clean_soaks, marginal_soaks, soak
from .test_approval_unit import FakeTI, build_dag, context_for

RULE_BY = "auto-approved by rule: every soak clean with >= 20 requests on both slots; candidate no worse than live"


def gate_ti(world, soaks, **spec_overrides) -> FakeTI:
    xcoms = {("plan", "return_value"): world.plan(**spec_overrides)}
    xcoms.update({(task_id, "return_value"): summary for task_id, summary in soaks.items()})
    return FakeTI(xcoms)


# -- the spec and the run param ----------------------------------------------------------------------
def test_approval_mode_defaults_to_required(world):
    assert world.spec.approval_mode == "required"
    assert Plan.from_dict(world.plan(approval_mode="auto")).spec.approval_mode == "auto"


def test_bad_approval_mode_is_a_clear_spec_error(world):
    with pytest.raises(SpecError) as bad:
        DeploymentSpec.from_dict({**world.spec.to_dict(), "approval_mode": "automatic"})
    assert bad.value.problems == ["approval_mode must be one of ['required', 'auto'], got 'automatic'"]


def test_approval_mode_is_a_run_param_with_both_modes(world):
    dag = deployment_dag("auto_param_test", world.spec.to_dict())
    param = dag.params.get_param("approval_mode")
    assert param.value == "required"
    assert param.schema["enum"] == ["required", "auto"]
    assert param.resolve("auto") == "auto"
    with pytest.raises(ParamValidationError):
        param.resolve("automatic")
    # The plan builds each run's spec with the mode chosen at trigger time.
    assert dag.get_task("plan").spec["approval_mode"] == "{{ params.approval_mode }}"


# -- the rule ----------------------------------------------------------------------------------------
def refusals(soaks, min_requests=20, margin=1.5):
    return approval_rule.refusals(soaks, min_requests=min_requests, margin=margin)


def test_clean_soaks_qualify():
    assert refusals(clean_soaks()) == []


@pytest.mark.parametrize("case", sorted(MARGINAL))
def test_each_marginal_case_is_refused_with_its_reason(case):
    soaks, reason = marginal_soaks(case)
    assert refusals(soaks) == [reason]


def test_an_inconclusive_comparison_qualifies():
    inconclusive = {"result": "inconclusive", "p_value": None, "margin": 1.5, "alpha": 0.05, "reason": "few errors"}
    assert refusals({"soak_50": soak(50, comparison=inconclusive)}) == []


@pytest.mark.parametrize(
    ("cand_errors", "live_errors", "expected"),
    [
        (0.0, 0.0, []),  # 0 vs 0 qualifies
        (0.0, 5.0, []),
        (3.0, 10.0, []),  # 1.5 % against 1 %: exactly the margin
        (4.0, 10.0, ["soak_50 candidate error rate 2 % > 1.5 x live 1 %"]),
        (1.0, 0.0, ["soak_50 candidate error rate 0.5 % > 1.5 x live 0 %"]),
    ],
)
def test_candidate_rate_against_margin_times_live(cand_errors, live_errors, expected):
    summary = soak(
        50,
        candidate={"slot": "green", "requests": 200.0, "errors": cand_errors, "rate_pct": None},
        live={"slot": "blue", "requests": 1000.0, "errors": live_errors, "rate_pct": None},
    )
    assert refusals({"soak_50": summary}) == expected


@pytest.mark.parametrize(("requests", "qualifies"), [(20.0, True), (19.0, False)])
def test_min_requests_is_inclusive_on_both_slots(requests, qualifies):
    for role in ("candidate", "live"):
        slots = {r: {"slot": r, "requests": 500.0, "errors": 0.0, "rate_pct": 0.0} for r in ("candidate", "live")}
        slots[role]["requests"] = requests
        reasons = refusals({"soak_10": soak(10, **slots)})
        assert reasons == ([] if qualifies else [f"soak_10 saw 19 requests on {role} < 20"])


def test_zero_requests_never_qualify_even_without_a_minimum():
    empty = {"slot": "blue", "requests": 0.0, "errors": 0.0, "rate_pct": None}
    assert refusals({"soak_50": soak(50, live=empty)}, min_requests=0) == ["soak_50 saw 0 requests on live < 1"]


def test_missing_or_old_evidence_goes_to_a_person():
    old = {"requests": 1200, "errors": 6, "rate_pct": 0.5, "max_rate_pct": 1.25, "alarms_seen": [], "outcome": "clean"}
    assert refusals({"soak_10": None, "soak_50": old}) == [
        "soak_10 left no summary",
        "soak_50 recorded no request and error counts for live",
        "soak_50 recorded no comparison with live",
    ]
    assert refusals({}) == ["no soak evidence to judge"]


# -- the gate ----------------------------------------------------------------------------------------
def test_auto_mode_approves_clean_evidence_without_asking(world, upsert):
    ti = gate_ti(world, clean_soaks(), approval_mode="auto")
    before = datetime.now(UTC)

    record = build_dag().get_task("approval").execute(context_for(ti))

    upsert.assert_not_called()  # no Required Action is created, nobody is asked
    assert set(record) == {"decision", "by", "user", "at", "via"}
    assert (record["decision"], record["via"], record["by"], record["user"]) == ("approve", "rule", RULE_BY, None)
    assert before <= datetime.fromisoformat(record["at"]) <= datetime.now(UTC)
    request = ti.pushed["request"]
    assert (request["approval_mode"], request["not_auto_approved"], request["deadline"]) == ("auto", [], None)
    assert request["split"] == {"blue": 50, "green": 50}
    # The promotion reads the rule's record as an approval.
    promotion = ShiftWeightOperator(task_id="shift_100", candidate_pct=100, approval_task_id="approval")
    accepted = promotion._approval(context_for(FakeTI({("approval", "return_value"): record})), None)
    assert accepted == record


def test_the_rule_states_the_spec_minimum(world, upsert):
    ti = gate_ti(world, clean_soaks(), approval_mode="auto", min_requests=400)
    record = build_dag().get_task("approval").execute(context_for(ti))
    assert record["by"].startswith("auto-approved by rule: every soak clean with >= 400 requests on both slots")


@pytest.mark.parametrize("case", sorted(MARGINAL))
def test_auto_mode_asks_a_person_when_marginal_and_says_why(world, upsert, case):
    soaks, reason = marginal_soaks(case)
    ti = gate_ti(world, soaks, approval_mode="auto")

    with pytest.raises(TaskAwaitingInput):
        build_dag().get_task("approval").execute(context_for(ti))

    body = upsert.call_args.kwargs["body"]
    assert f"Approval mode `auto`, but not auto-approved: {reason}. A person decides." in body
    assert ti.pushed["request"]["not_auto_approved"] == [reason]
    assert ti.pushed["request"]["deadline"] is not None


def test_required_mode_asks_even_for_clean_evidence(world, upsert):
    ti = gate_ti(world, clean_soaks())
    with pytest.raises(TaskAwaitingInput):
        build_dag().get_task("approval").execute(context_for(ti))
    assert "auto-approved" not in upsert.call_args.kwargs["body"]
    assert (ti.pushed["request"]["approval_mode"], ti.pushed["request"]["not_auto_approved"]) == ("required", None)


# -- the evidence, side by side ----------------------------------------------------------------------
def test_request_shows_candidate_and_live_side_by_side(world, upsert):
    ti = gate_ti(world, clean_soaks())
    with pytest.raises(TaskAwaitingInput):
        build_dag().get_task("approval").execute(context_for(ti))
    body = upsert.call_args.kwargs["body"]
    soak_50 = body[body.index("#### `soak_50`") : body.index("### Alarms")]
    assert soak_50.splitlines()[:8] == [
        "#### `soak_50`: clean, soaked 10m, last datapoint judged 2026-11-26 12:09:00 UTC",
        "",
        "| | green (candidate) | blue (live) |",
        "|---|---|---|",
        "| Requests | 400 | 3600 |",
        "| Errors | 2 | 20 |",
        "| Error rate | 0.5 % | 0.56 % |",
        "",
    ]
    assert (
        "Comparison with live: **pass**, p = 0.41 (margin 1.5x, alpha 0.05): green 0.5 % is not significantly "
        "above 1.5 x blue 0.56 %. Candidate's max window rate 1.25 %; alarms seen: none." in soak_50
    )
    assert "candidate compared with live, margin 1.5x" in body


def test_request_stays_readable_with_older_summaries(world, upsert):
    old = {"requests": 1200, "errors": 6, "rate_pct": 0.5, "max_rate_pct": 1.25, "alarms_seen": [], "outcome": "clean"}
    ti = gate_ti(world, {"soak_50": old})
    with pytest.raises(TaskAwaitingInput):
        build_dag().get_task("approval").execute(context_for(ti))
    body = upsert.call_args.kwargs["body"]
    assert "#### `soak_50`: clean\n" in body
    assert "| Requests | 1200 | — |" in body
    assert "| Error rate | 0.5 % | — |" in body
    assert "Comparison with live: not recorded." in body
    assert "#### `soak_10`: no summary recorded" in body


# -- where the rule's decision is shown --------------------------------------------------------------
def test_hold_skips_naming_the_rule(world):
    record = approval_rule.rule_record(20, datetime(2026, 11, 26, 12, 30, tzinfo=UTC))
    ti = FakeTI(
        {("plan", "return_value"): world.plan(), ("approval", "return_value"): record}, states={"approval": "success"}
    )
    with pytest.raises(AirflowSkipException) as skipped:
        build_dag().get_task("hold").execute(context_for(ti))
    assert str(skipped.value) == f"{RULE_BY} at 2026-11-26 12:30:00 UTC"


def test_timeline_summary_shows_the_rule():
    record = approval_rule.rule_record(20, datetime(2026, 11, 26, 12, 30, tzinfo=UTC))
    assert str(describe_stage("approval", state="success", summary=record)) == f"12:30:00 {RULE_BY}"
    person = {"decision": "approve", "by": "Ada", "at": "2026-11-26T12:30:00+00:00", "via": "response"}
    assert str(describe_stage("approval", state="success", summary=person)) == "12:30:00 approved by Ada via response"


@pytest.mark.parametrize("mode", ["required", "auto"])
def test_dry_run_says_how_the_promotion_is_decided(world, mode):
    from bluegreen_provider.operators.plan import PlanDeploymentOperator

    changes = PlanDeploymentOperator._changes(Plan.from_dict(world.plan(approval_mode=mode)), {}, {})
    [approval] = [c["change"] for c in changes if c["stage"] == "approval"]
    ask = "wait up to 86400s for a manual approval (on timeout: hold)"
    if mode == "auto":
        ask = "approve at once if every soak was clean and the candidate no worse than live, else " + ask
    assert approval == ask

# ruff: noqa: F811
"""Concurrency: the real deployment DAG while someone else acts on the same service, or on another one.

- **Two runs of one service**: while run A is mid-deployment, run B of the same DAG starts in a
  process of its own (``other_run.py``, same sandbox, same metadata DB). B's plan is refused before
  anything changes, naming A as the owner; A goes on and promotes as it would have.
- **Two services at once**: lego-api and a second service seeded beside it (own zone, record and
  functions: ``tests/chaos/dags/brick_shop.py``) deploy at the same time, each waiting at its
  approval for the other to reach its own; both promote, each in its own state record.
- **A manual rollback during each stage**: ``bluegreen rollback`` (the CLI, in this process, the same
  code the rollback DAG runs) pressed from inside the run at one stage: plan done, deploy,
  migrations, health, shift_10 while Route53 propagates, soak_10, shift_50, soak_50, awaiting
  approval, and after promotion while the old slot is retained. The press is made by wrapping the
  stage's own code (an operator, a trigger's poll, the approval request), so it lands exactly there;
  nothing sleeps to win a race. Every case ends with 100 % on the slot the rollback means (the live
  slot mid-deployment, the retained slot after promotion), the run failing or stopping cleanly, and
  no Route53 change after the press: no later stage moves traffic.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import os
import runpy
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bluegreen_provider import cli
from bluegreen_provider.operators import deploy as deploy_module
from bluegreen_provider.operators.deploy import DeployGreenOperator
from bluegreen_provider.operators.migrations import RunMigrationsOperator
from bluegreen_provider.operators.traffic import ShiftWeightOperator
from bluegreen_provider.sandbox import Sandbox
from bluegreen_provider.sandbox import world as lego
from bluegreen_provider.sandbox.route53_rules import CHANGES
from bluegreen_provider.state import DeploymentState, decode_txt, owner_of
from bluegreen_provider.triggers import health as health_trigger
from bluegreen_provider.triggers.error_rate import ErrorRateTrigger

# The e2e fixtures, requested by name below (hence the redefinitions ruff sees as F811).
from tests.chaos.other_run import wait_for_approval_of
from tests.chaos.route53_history import committed_splits, distinct
from tests.e2e.aws_state import ALARM_STATES, assert_changed_only, sandbox_aws_state, state_history
from tests.e2e.conftest import (  # noqa: F401
    FAST,
    LOCAL_BUNDLE,
    REPO,
    deploy,
    deployment_state,
    e2e_bundle,
    sandbox,
    service_db,
)

pytestmark = [pytest.mark.chaos("concurrency"), pytest.mark.e2e]

STEPS = [step["weight"] for step in FAST["steps"]]
SERVICE = "lego-api"
LIVE = {"blue": 100, "green": 0}
PROMOTED = {"blue": 0, "green": 100}
CANARY = [LIVE, {"blue": 90, "green": 10}, {"blue": 50, "green": 50}, PROMOTED]
LEGO_DAG = REPO / "dags" / "blue_green_deploy.py"
LEGO_DAG_ID = "blue_green_deploy"
CHAOS_DAGS = Path(__file__).resolve().parent / "dags"
# These cases are about who changes traffic, not about the soaks' verdicts: on a loaded machine the
# sandbox's traffic thread can fall below min_requests in a 4 s soak, which must not fail them.
SOAKS_PASS_ON_SCARCE_TRAFFIC = {"no_data_policy": "pass"}
OTHER_RUN = Path(__file__).resolve().parent / "other_run.py"
BUNDLES = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"


def verdicts(result: Any) -> dict[str, Any]:
    """Why each failed task failed, where it kept a verdict (soaks and shifts do)."""
    from bluegreen_provider.localrun import xcom

    failed = [task for task, s in result.states.items() if s == "failed"]
    return {task: xcom(result.dag_id, result.run_id, task, key="verdict") for task in failed}


# -- the button ------------------------------------------------------------------------------------


@dataclass
class Press:
    """``bluegreen rollback --service lego-api``, pressed once, from whichever hook reaches it first."""

    sandbox: Sandbox
    stage: str
    exit_code: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    change_id: str | None = None
    # The last change Route53 held when the button was pressed, and whether it was still PENDING.
    change_before: dict[str, Any] | None = None
    pending_at_press: bool = False

    @property
    def pressed(self) -> bool:
        return self.exit_code is not None

    def __call__(self) -> None:
        if self.pressed:
            return
        changes = self.sandbox.route53_changes()
        self.change_before = changes[-1]
        self.pending_at_press = self.change_before["insync_at"] > time.time()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.exit_code = cli.main(["--dags-folder", str(REPO / "dags"), "rollback", "--service", SERVICE])
        text = out.getvalue()
        self.summary = json.loads(text[text.index('{\n  "changed"') :])
        self.change_id = self.summary["change_id"]


def install(stage: str, press: Press, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Make the run press the button at ``stage``; returns extra keyword arguments for ``deploy``."""

    def before(owner: Any, name: str, when: Callable[..., bool] = lambda *a, **k: True) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if when(*args, **kwargs):
                press()
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)

    def watching(mode: str, pct: int) -> Callable[..., bool]:
        return lambda trigger, watch, now: trigger.mode == mode and watch.soak.stage_pct == pct

    if stage == "plan done":
        before(DeployGreenOperator, "execute")
    elif stage == "deploy":  # the candidate's aliases moved, the release not yet recorded
        before(deploy_module, "record_release")
    elif stage == "migrations":
        before(RunMigrationsOperator, "execute")
    elif stage == "health":  # the candidate's health check recorded, its URL being probed
        before(health_trigger, "probe_once")
    elif stage == "shift_10 propagation":
        before(ErrorRateTrigger, "step", watching("propagation", 10))
    elif stage in ("soak_10", "soak_50"):
        before(ErrorRateTrigger, "step", watching("soak", int(stage.removeprefix("soak_"))))
    elif stage == "shift_50":
        before(ShiftWeightOperator, "execute", lambda op, context: op.task_id == "shift_50")
    elif stage == "awaiting approval":
        return {"on_approval_request": lambda run_id: press()}
    elif stage == "retention":  # promoted; teardown_blue guards the new live slot until the retention ends
        before(ErrorRateTrigger, "step", lambda trigger, watch, now: trigger.mode == "guard")
        return {"retention_seconds": 15}
    else:
        raise ValueError(stage)
    return {}


@dataclass(frozen=True)
class Stage:
    """One place to press: what the run then does, and what the press finds."""

    name: str
    # The task that fails after the press (none after the promotion: the run stops cleanly).
    fails: frozenset[str]
    splits_before: tuple[dict[str, int], ...]
    slow: bool = True
    sandbox: dict[str, Any] = field(default_factory=dict)

    def param(self) -> Any:
        marks = [pytest.mark.sandbox(**self.sandbox)] if self.sandbox else []
        if self.slow:
            marks.append(pytest.mark.slow)
        return pytest.param(self, id=self.name.replace(" ", "_"), marks=marks)


AT_10 = ({"blue": 100, "green": 0}, {"blue": 90, "green": 10})
AT_50 = (*AT_10, {"blue": 50, "green": 50})
STAGES = [
    Stage("plan done", frozenset({"deploy_green"}), (LIVE,)),
    Stage("deploy", frozenset({"deploy_green"}), (LIVE,)),
    Stage("migrations", frozenset({"health_check"}), (LIVE,)),
    Stage("health", frozenset({"shift_10"}), (LIVE,)),
    Stage("shift_10 propagation", frozenset({"shift_10"}), AT_10, sandbox={"propagation_seconds": 3}),
    Stage("soak_10", frozenset({"soak_10"}), AT_10),
    Stage("shift_50", frozenset({"shift_50"}), AT_10),
    Stage("soak_50", frozenset({"soak_50"}), AT_50),
    Stage("awaiting approval", frozenset({"shift_100"}), AT_50, slow=False),
    Stage("retention", frozenset(), (*AT_50, PROMOTED)),
]


@pytest.mark.parametrize("stage", [s.param() for s in STAGES])
def test_a_manual_rollback_during_each_stage_ends_on_the_slot_it_means(
    stage: Stage, deploy, sandbox, monkeypatch, capfd, caplog, report_split, report_lost_deployment
) -> None:
    press = Press(sandbox, stage.name)
    result = deploy("v2", **SOAKS_PASS_ON_SCARCE_TRAFFIC, **install(stage.name, press, monkeypatch))
    log = "".join(capfd.readouterr()) + caplog.text

    assert press.pressed, f"the run never reached {stage.name}: {result.states}; {verdicts(result)}"
    assert press.exit_code == 0, press.summary
    if stage.name == "shift_10 propagation":
        assert press.pending_at_press, f"the shift was INSYNC before the press: {press.change_before}"

    state = deployment_state(sandbox)
    if state is None or state.owner != owner_of(result.dag_id, result.run_id):
        report_lost_deployment(f"{stage.name}: the state record names {state and state.owner}")
    # 100 % on the slot the rollback means: blue, live mid-deployment and retained after the promotion.
    assert sandbox.weights() == LIVE
    assert (state.phase, state.live, state.split) == ("aborted", "blue", LIVE), state
    assert f"manual rollback by cli:{getpass.getuser()}" in state.reason, state.reason
    assert press.summary["owner"] == owner_of(result.dag_id, result.run_id), press.summary
    assert press.summary["split_after"] == LIVE and press.summary["live"] == "blue", press.summary

    # Nothing moved traffic after the press: its change is Route53's last.
    changes = sandbox.route53_changes()
    assert changes[-1]["change_id"] == press.change_id, [c["comment"] for c in changes]
    splits = committed_splits(sandbox.route53_changes(), report_split, STEPS)
    assert distinct(splits) == distinct([*stage.splits_before, LIVE]), splits

    # The run fails at the stage after the press, or (after promotion) stops without retiring anything.
    failed = {task for task, s in result.states.items() if s == "failed"}
    assert result.states["rollback"] == "success", result.states
    rollback = result.xcom("rollback")
    assert rollback["action"] == "nothing", rollback
    if not stage.fails:
        # The rollback teardown waits for the promotion, not for teardown_blue's retention: it ran before
        # the press (and found the run promoted) or after it (and found the traffic back on blue).
        before_press = rollback["split_now"] == PROMOTED and "promoted" in rollback["reason"]
        after_press = rollback["split_now"] == LIVE and "aborted" in rollback["reason"]
        assert before_press or after_press, rollback
        assert result.state == "success" and not failed, result.states
        teardown = result.xcom("teardown_blue")
        assert teardown["action"] == "nothing" and "aborted" in teardown["reason"], teardown
        assert state.retained is None
        return
    assert rollback["split_now"] == LIVE, rollback
    assert result.state == "failed", result.states
    assert len(failed) == 1 and failed <= stage.fails, (stage.fails, result.states)
    assert "rolled back by hand" in log, f"{failed} did not say why it stopped"


# -- two runs at once --------------------------------------------------------------------------------


@pytest.fixture
def chaos_bundle(e2e_bundle, monkeypatch) -> None:
    """Serve tests/chaos/dags too (the second service), to this process and to the other run's."""
    bundles = json.loads(os.environ[BUNDLES])
    ours = {"name": "bluegreen-chaos", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(CHAOS_DAGS)}}
    monkeypatch.setenv(BUNDLES, json.dumps([*bundles, ours]))


@dataclass
class OtherRun:
    """A deployment DAG run to its end by ``other_run.py`` in its own process."""

    process: subprocess.Popen
    result_file: Path
    log_file: Path

    @classmethod
    def start(cls, tmp_path: Path, dag_file: Path, dag_name: str, conf: dict[str, Any], *extra: str) -> OtherRun:
        result, log = tmp_path / f"{dag_name}-result.json", tmp_path / f"{dag_name}.log"
        command = [sys.executable, str(OTHER_RUN), "--dag-file", str(dag_file), "--dag-name", dag_name,
                   "--conf", json.dumps(conf), "--result", str(result), *extra]  # fmt: skip
        with log.open("w") as out:
            process = subprocess.Popen(command, env=os.environ.copy(), stdout=out, stderr=subprocess.STDOUT)
        return cls(process, result, log)

    def wait(self, timeout: float = 300) -> dict[str, Any]:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the other run did not end in {timeout:g} s; its log:\n{self.log()}") from None
        assert self.result_file.exists(), f"the other run wrote no result; its log:\n{self.log()}"
        result = json.loads(self.result_file.read_text())
        assert "crash" not in result, f"{result['crash']}\n{self.log()}"
        return result

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-6000:]


def answering_anyway(seen: dict[str, Any]) -> Callable[[Callable[[str], None]], Callable[[str], None]]:
    """An approval hook that keeps its failure in ``seen["error"]`` and returns, so the run is still
    answered and ends now instead of waiting out its approval timeout; the test then fails on it."""

    def wrap(hook: Callable[[str], None]) -> Callable[[str], None]:
        def run(run_id: str) -> None:
            try:
                hook(run_id)
            except BaseException as err:
                seen["error"] = f"{type(err).__name__}: {err}"

        return run

    return wrap


def lego_conf(sandbox: Sandbox, release: str = "v2") -> dict[str, Any]:
    """The run conf the deploy fixture gives: the fast timings, every function on ``release``'s zip."""
    zip_file = str(sandbox.state_dir / "releases" / f"{release}.zip")
    return {**FAST, "functions": [{"name": fn, "zip_file": zip_file} for fn in lego.FUNCTIONS]}


def assert_promoted(result: Any, sandbox: Sandbox, report_split: Callable[..., bool]) -> DeploymentState:
    """The run ended as a clean run ends: green promoted, blue retired, every stage applied once."""
    assert result.state == "success", result.states
    assert sandbox.weights() == PROMOTED
    state = deployment_state(sandbox)
    assert state.owner == owner_of(result.dag_id, result.run_id), state
    assert (state.phase, state.generation, state.live) == ("retired", 7, "green"), state
    assert distinct(committed_splits(sandbox.route53_changes(), report_split, STEPS)) == CANARY
    return state


def test_a_second_run_of_the_service_is_refused_naming_the_owner_and_the_first_promotes(
    deploy, sandbox, tmp_path, report_split
) -> None:
    """B starts while A is parked at its approval at 50/50: refused, nothing changed, A promotes."""
    seen: dict[str, Any] = {}

    @answering_anyway(seen)
    def second_run(run_id: str) -> None:
        seen["owner"] = owner_of(LEGO_DAG_ID, run_id)
        seen["state"] = deployment_state(sandbox)
        seen["before"] = sandbox_aws_state(sandbox)
        seen["b"] = OtherRun.start(tmp_path, LEGO_DAG, "deploy", lego_conf(sandbox)).wait()
        seen["after"] = sandbox_aws_state(sandbox)

    a = deploy("v2", on_approval_request=second_run, **SOAKS_PASS_ON_SCARCE_TRAFFIC)

    assert "error" not in seen, seen["error"]
    assert "b" in seen, f"A never reached its approval: {a.states}; {verdicts(a)}"
    b = seen["b"]
    assert seen["owner"] == owner_of(a.dag_id, a.run_id)
    assert (seen["state"].phase, seen["state"].split) == ("shifting", {"blue": 50, "green": 50}), seen["state"]
    assert b["dag_id"] == a.dag_id and b["run_id"] != a.run_id
    assert b["state"] == "failed" and b["states"]["plan"] == "failed", b
    assert b["states"]["deploy_green"] == "upstream_failed", b
    refusal = b["errors"]["plan"]
    assert refusal.startswith("deployment refused: another deployment owns this service: "), refusal
    assert f"run {seen['owner']} (shifting, generation 5, since " in refusal, refusal
    assert "with traffic at blue 50 / green 50" in refusal and "bluegreen rollback" in refusal, refusal
    # Refused before anything changed: only the alarms' states (the sandbox's evaluator) may move.
    assert_changed_only(seen["before"], seen["after"], ALARM_STATES, why="the refused run changed AWS")

    assert_promoted(a, sandbox, report_split)
    owners = {s.owner for s in state_history(sandbox) if s is not None}
    assert owners == {seen["owner"]}, f"a state record of another run was written: {owners}"


@pytest.mark.slow
def test_a_second_run_started_as_the_first_takes_the_service_is_refused_whatever_stage_it_meets(
    deploy, sandbox, tmp_path, report_split
) -> None:
    """B starts the moment A's plan took the service and runs beside A's stages; A waits for B at its gate."""
    started = threading.Event()
    other: list[OtherRun] = []

    def start_when_taken() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = deployment_state(sandbox)
            if state is not None and state.owner.startswith(f"{LEGO_DAG_ID}/"):
                other.append(OtherRun.start(tmp_path, LEGO_DAG, "deploy", lego_conf(sandbox)))
                started.set()
                return
            sandbox.wait_for_flushes(1)  # the state record is read again once per sandbox flush

    watcher = threading.Thread(target=start_when_taken, daemon=True)
    watcher.start()
    seen: dict[str, Any] = {}

    @answering_anyway(seen)
    def wait_for_b(run_id: str) -> None:
        assert started.wait(60), "A's plan never took the service"
        seen["b"] = other[0].wait()

    a = deploy("v2", on_approval_request=wait_for_b, **SOAKS_PASS_ON_SCARCE_TRAFFIC)
    watcher.join(timeout=5)

    assert "error" not in seen, seen["error"]
    b = seen["b"]
    owner = owner_of(a.dag_id, a.run_id)
    assert b["state"] == "failed" and b["states"]["plan"] == "failed", b
    refusal = b["errors"]["plan"]
    assert refusal.startswith(f"deployment refused: another deployment owns this service: run {owner} ("), refusal
    assert_promoted(a, sandbox, report_split)
    owners = {s.owner for s in state_history(sandbox) if s is not None}
    assert owners == {owner}, f"the refused run wrote a state record: {owners}"
    assert not [c for c in sandbox.route53_changes() if b["run_id"] in (c["comment"] or "")]


def zone_splits(zone_id: str, record_name: str) -> list[dict[str, int]]:
    """Every split a zone's record held, change by change (the seed's included)."""
    name = record_name.rstrip(".") + "."
    return [
        {r["SetIdentifier"]: int(r["Weight"]) for r in change.record_sets if r["Name"] == name and "Weight" in r}
        for change in CHANGES.zone(zone_id)
    ]


def zone_state(sandbox: Sandbox, zone_id: str, record_name: str) -> DeploymentState | None:
    """The deployment state record beside ``record_name``, read back from moto."""
    records = sandbox.clients()("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    txt = [r for r in records if r["Type"] == "TXT" and r["Name"] == f"_bluegreen.{record_name}."]
    if not txt:
        return None
    return DeploymentState.from_json(decode_txt(" ".join(v["Value"] for v in txt[0]["ResourceRecords"])))


@pytest.mark.slow
def test_two_services_deploy_at_the_same_time_and_both_promote(
    deploy, sandbox, chaos_bundle, tmp_path, report_split
) -> None:
    shop_module = runpy.run_path(str(CHAOS_DAGS / "brick_shop.py"))
    shop, shop_dag_id = shop_module["SHOP"], shop_module["DAG_ID"]
    shop_zone = sandbox.add_service(shop)
    lego_before = sandbox.weights()
    b = OtherRun.start(tmp_path, CHAOS_DAGS / "brick_shop.py", "deploy", dict(FAST), "--approve",
                       "--after-approval-of", LEGO_DAG_ID)  # fmt: skip
    seen: dict[str, Any] = {}

    @answering_anyway(seen)
    def both_at_their_gates(run_id: str) -> None:
        seen["shop approval"] = wait_for_approval_of(shop_dag_id, while_running=b.process)
        seen["lego weights"] = sandbox.weights()

    a = deploy("v2", on_approval_request=both_at_their_gates, **SOAKS_PASS_ON_SCARCE_TRAFFIC)
    shop_run = b.wait()
    assert "error" not in seen, f"{seen['error']}\n{b.log()}"
    assert "lego weights" in seen, f"lego-api never reached its approval: {a.states}; {verdicts(a)}"

    assert lego_before == LIVE and seen["lego weights"] == {"blue": 50, "green": 50}, seen
    # lego-api: promoted as a run alone would be.
    assert_promoted(a, sandbox, report_split)
    # brick-shop: promoted in its own zone, its own state record, its own functions.
    assert shop_run["state"] == "success", f"{shop_run}\n{b.log()}"
    assert shop_run["states"]["teardown_blue"] == "success", shop_run
    assert sandbox.service_weights(shop.name) == PROMOTED
    state = zone_state(sandbox, shop_zone, shop.record_name)
    assert state.owner == owner_of(shop_dag_id, shop_run["run_id"]) and state.service == shop.name, state
    assert (state.phase, state.generation, state.live) == ("retired", 7, "green"), state
    splits = zone_splits(shop_zone, shop.record_name)
    assert not [s for s in splits if report_split(s, STEPS)], splits
    assert distinct(splits) == CANARY, splits
    lambda_ = sandbox.clients()("lambda")
    for function in shop.functions:
        version = lambda_.get_alias(FunctionName=function, Name="production-green")["FunctionVersion"]
        code = lambda_.get_function(FunctionName=function, Qualifier=version)["Configuration"]["CodeSha256"]
        assert code == sandbox.release_sha256("v2"), function
    # At the same time: each stood at 50/50 while the other was between its first shift and its promotion.
    lego_changes = CHANGES.zone(sandbox.hosted_zone_id)
    shop_changes = CHANGES.zone(shop_zone)
    lego_span = span(lego_changes, "blue_green_deploy")
    shop_span = span(shop_changes, shop_dag_id)
    assert lego_span[0] < shop_span[1] and shop_span[0] < lego_span[1], (lego_span, shop_span)
    # Neither wrote into the other's zone.
    assert all(shop_dag_id not in (c.comment or "") for c in lego_changes)
    assert all(LEGO_DAG_ID not in (c.comment or "") for c in shop_changes)


def span(changes: list[Any], dag_id: str) -> tuple[float, float]:
    """From a run's shift to 10 % to its promotion, as Route53 received them (epoch seconds)."""
    shifts = {
        c.comment.split(": ", 1)[1].split(" (")[0]: c.submitted_at for c in changes if dag_id in (c.comment or "")
    }
    return shifts["shift to 10 %"], shifts["shift to 100 %"]

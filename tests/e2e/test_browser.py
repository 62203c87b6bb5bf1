"""The Airflow UI flows of a deployment, driven in Chromium against a real stack.

One stack (sandbox, Postgres, api-server, scheduler, dag-processor, triggerer) serves every flow, and
two deployments carry them, in this file's order:

1. triggered from the trigger form with the run's params edited there (short soaks, a release label,
   another threshold), approved with the Approve button of its Required Action; its Gantt view, the
   Blue/Green page and the run's Blue/Green timeline are then read in the browser;
2. a release whose new migration has a typo fails at ``run_migrations``; the migration is fixed and
   the stage cleared from its task page; the same run resumes and is promoted by marking its
   ``approval`` task success.

Everything a person does goes through the UI; what it did is read back over REST and from the
sandbox. A screenshot of each flow goes to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.airflow_world import (
    DAG_ID,
    FUNCTIONS,
    World,
    airflow_world,
    dag_ready,
    live_and_candidate,
    no_run_active,
    parking_exit_processed,
    print_diagnosis,
    wait_for,
    wait_run,
)
from tests.e2e.browser import chromium, editor_of, forget_screenshots, paste_json, screenshot
from tests.e2e.conftest import FAST, deployment_state

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(300)]

UI_TIMEOUT_MS = 30_000
expect.set_options(timeout=UI_TIMEOUT_MS)
STAGES = ("plan", "deploy_green", "run_migrations", "health_check", "shift_10", "soak_10", "shift_50", "soak_50")
PROMOTION = ("approval", "shift_100", "teardown_blue")
# A release's new migration, first with a typo in its type (PostgreSQL refuses it), then fixed.
BROKEN_MIGRATION = "ALTER TABLE mocs ADD COLUMN IF NOT EXISTS featured BOOLEN NOT NULL DEFAULT false;\n"
FIXED_MIGRATION = "ALTER TABLE mocs ADD COLUMN IF NOT EXISTS featured BOOLEAN NOT NULL DEFAULT false;\n"
# The e2e timings, with fewer requests needed per soak window: at 10 % of the sandbox's 40 requests a
# second, resolvers still caching the old split can leave a 4 s window under FAST's 8 (a "no data" failure).
TIMINGS: dict[str, Any] = {**FAST, "min_requests": 2}
# What the flows leave for the later ones: run ids, the split before each run.
RUNS: dict[str, Any] = {}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as started:
        forget_screenshots()  # the folder shows this run's flows only
        yield started


@pytest.fixture(scope="module")
def world(browser: Browser, tmp_path_factory) -> Iterator[World]:
    """The stack, started only once Chromium is known to run (a missing browser skips before this)."""
    with airflow_world(tmp_path_factory.mktemp("browser")) as started:
        dag_ready(started)
        yield started


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, world: World) -> Iterator[Page]:
    """A fresh browser profile on the stack's UI (the simple auth manager makes everyone admin).

    After a failed flow it prints the tails of the stack's logs and keeps a screenshot of the page.
    """
    failed_before = request.session.testsfailed
    context = browser.new_context(
        base_url=world.airflow.url,
        viewport={"width": 1400, "height": 1000},
        permissions=["clipboard-read", "clipboard-write"],  # pasting into the form's JSON editors
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    yield page
    if request.session.testsfailed > failed_before:
        screenshot(page, f"failed-{request.node.name}")
        print_diagnosis(world.airflow.home)
    context.close()


def earlier(key: str) -> Any:
    assert key in RUNS, f"this flow continues an earlier one of this module, which did not get to {key!r}"
    return RUNS[key]


def split_text(weights: dict[str, int]) -> str:
    """A split as the Blue/Green view words it: ``blue 90 / green 10`` (slots by name)."""
    return " / ".join(f"{slot} {weights[slot]}" for slot in sorted(weights))


def run_url(run_id: str, tail: str = "") -> str:
    return f"/dags/{DAG_ID}/runs/{run_id}{tail}"


def gantt_bar(page: Page, task: str) -> Locator:
    """The Gantt chart's bar of ``task``: a link to the task instance, in the chart's row for the task.

    The grid's cell for the task (which names its run) and the task list's entry (a node) carry the
    same task id; the chart's row is the one that is neither.
    """
    return page.locator(f'[data-task-id="{task}"]:not([data-run-id]):not([data-node-id])').get_by_role("link")


def wait_awaiting_approval(world: World, run_id: str) -> None:
    """The approval asks for an answer and the scheduler has seen its worker park (see parking_exit_processed)."""
    wait_run(world, run_id, timeout=180, until=lambda: world.states(run_id).get("approval") == "awaiting_input")
    wait_for("the parked approval's exit", lambda: parking_exit_processed(world, run_id, "approval"), 60)


# -- 1. trigger form, Required Actions, Gantt, Blue/Green view -------------------------------------
def test_the_trigger_form_starts_a_run_with_the_params_edited_in_it(world: World, page: Page) -> None:
    before = world.sandbox.weights()
    run_id = f"browser_form_{uuid.uuid4().hex[:6]}"
    release = {"label": "1.4.2-browser", "zip_file": str(world.sandbox.state_dir / "releases" / "v2.zip")}
    edited = {"error_rate_threshold_pct": 7, **{k: v for k, v in TIMINGS.items() if k != "steps"}}

    page.goto(f"/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    form = page.get_by_role("dialog")
    expect(form.get_by_text(f"Trigger Dag - {DAG_ID}")).to_be_visible()
    for name, value in edited.items():  # number fields, one per param
        field = form.locator(f'input[name="element_{name}"]')
        field.fill(str(value))
        expect(field).to_have_value(str(value))
    paste_json(page, editor_of(form, "steps"), TIMINGS["steps"])
    paste_json(page, editor_of(form, "release"), release)
    expect(editor_of(form, "release")).to_contain_text("1.4.2-browser")
    expect(editor_of(form, "steps")).to_contain_text('"soak_seconds": 4')
    form.locator('input[name="element_error_rate_threshold_pct"]').scroll_into_view_if_needed()
    screenshot(page, "trigger-form")  # the edited steps and numbers
    form.get_by_role("button", name="Advanced Options").click()
    form.get_by_label("Run ID").fill(run_id)
    form.get_by_role("button", name="Trigger", exact=True).click()
    expect(page.get_by_text("Dag Run Triggered").first).to_be_visible()  # a toast, at times drawn twice

    run = wait_for("the triggered run", lambda: world.get(world.run_path(run_id)), 30)
    conf = run["conf"]
    assert {name: conf.get(name) for name in edited} == edited, conf
    assert conf["steps"] == TIMINGS["steps"] and conf["release"] == release, conf
    assert run["triggered_by"] == "ui", run
    RUNS["form"], RUNS["form_split_before"] = run_id, before


def test_approving_the_required_action_in_the_ui_promotes_the_run(world: World, page: Page) -> None:
    run_id, before = earlier("form"), earlier("form_split_before")
    live, candidate = live_and_candidate(before)
    wait_awaiting_approval(world, run_id)

    page.goto(run_url(run_id, "/tasks/approval/required_actions"))
    expect(page.get_by_text(f"Promote lego-api {candidate} to 100 %?")).to_be_visible()
    traffic = f"{split_text({live: 50, candidate: 50})}: {candidate} has 50 % of requests."
    expect(page.get_by_text(traffic)).to_be_visible()
    # The evidence is judged against the threshold edited in the trigger form.
    expect(page.get_by_text("Soak results (limit: error rate ≤ 7 %")).to_be_visible()
    screenshot(page, "required-action")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text("approval response successful").first).to_be_visible()  # a toast

    assert wait_run(world, run_id, timeout=120) == "success", world.states(run_id)
    states = world.states(run_id)
    assert {states[t] for t in (*STAGES, *PROMOTION)} == {"success"}, states
    hitl = world.get(f"{world.run_path(run_id)}/taskInstances/approval/-1/hitlDetails")
    assert hitl["chosen_options"] == ["Approve"] and hitl["response_received"], hitl
    assert world.xcom(run_id, "approval")["decision"] == "approve"
    assert world.sandbox.weights() == {live: 0, candidate: 100}
    state = deployment_state(world.sandbox)
    assert (state.phase, state.live) == ("retired", candidate), state
    # The release label typed into the form is on every version the run published.
    lam = world.sandbox.clients()("lambda")
    for function in FUNCTIONS:
        version = lam.get_alias(FunctionName=function, Name=f"production-{candidate}")["FunctionVersion"]
        described = lam.get_function(FunctionName=function, Qualifier=version)["Configuration"]["Description"]
        assert described.startswith("bluegreen lego-api release 1.4.2-browser by "), (function, described)
    page.goto(run_url(run_id))
    expect(page.get_by_role("heading", name=run_id, exact=True).first).to_be_visible()
    screenshot(page, "promoted-run")
    RUNS["promoted"], RUNS["promoted_live"], RUNS["promoted_candidate"] = run_id, live, candidate


def test_the_gantt_view_of_a_run_shows_its_stages_in_the_order_they_ran(world: World, page: Page) -> None:
    run_id = earlier("promoted")
    started = {t: ti["start_date"] for t, ti in world.task_instances(run_id).items() if t in (*STAGES, *PROMOTION)}
    page.goto(run_url(run_id))
    with page.expect_response(lambda r: r.url.endswith(f"/ui/gantt/{DAG_ID}/{run_id}")) as answer:
        page.get_by_role("button", name="Show Gantt").click()
    gantt = answer.value.json()
    assert {ti["task_id"]: ti["state"] for ti in gantt["task_instances"] if ti["task_id"] in started} == dict.fromkeys(
        started, "success"
    ), gantt

    # One bar per stage, each a link to its task instance, left to right in the order the stages started.
    order = sorted(started, key=started.get)
    links = [gantt_bar(page, task) for task in order]
    for task, link in zip(order, links, strict=True):
        expect(link).to_be_visible()
        expect(link).to_have_attribute("href", re.compile(rf"/runs/{run_id}/tasks/{task}\b"))

    def laid_out() -> list[tuple[float, str]] | None:
        boxes = [link.bounding_box() for link in links]  # None while the chart is being drawn again
        if not all(box and box["width"] > 0 for box in boxes):
            return None
        return [(box["x"], task) for box, task in zip(boxes, order, strict=True)]

    lefts = wait_for("the Gantt bars to be laid out", laid_out, 15, 0.25)
    assert lefts == sorted(lefts, key=lambda x: x[0]) and lefts[0][0] < lefts[-1][0], lefts
    screenshot(page, "gantt")


def test_the_blue_green_page_and_the_run_timeline_say_what_happened(world: World, page: Page) -> None:
    run_id = earlier("promoted")
    live, candidate = earlier("promoted_live"), earlier("promoted_candidate")

    page.goto("/")
    page.get_by_role("link", name="Blue/Green", exact=True).click()
    view = page.frame_locator('iframe[title="Blue/Green"]')
    card = view.locator("section", has=view.get_by_role("heading", name="lego-api"))
    expect(card.get_by_text(f"{candidate} live · 100 %")).to_be_visible()
    legend = " · ".join(f"{slot} {w} % (weight {w})" for slot, w in sorted({live: 0, candidate: 100}.items()))
    expect(card.get_by_text(legend)).to_be_visible()
    expect(card.get_by_text(f"retired {live}")).to_be_visible()
    expect(card.get_by_text("free: no deployment owns this service")).to_be_visible()
    expect(card.get_by_role("link", name=f"{DAG_ID} / {run_id}")).to_be_visible()
    expect(card.get_by_text("bluegreen rollback --service lego-api")).to_be_visible()
    screenshot(page, "bluegreen-page")

    page.goto(run_url(run_id))
    page.get_by_role("link", name="Blue/Green timeline").click()
    expect(page).to_have_url(re.compile(r"/plugin/bluegreen-run$"))
    timeline = page.frame_locator('iframe[title="Blue/Green timeline"]')
    expect(timeline.get_by_role("heading", name=f"{DAG_ID} / {run_id}")).to_be_visible()
    sentences = {
        "plan": f"planned: {live} is live, {candidate} takes the release; "
        f"traffic {split_text({live: 100, candidate: 0})}",
        "deploy_green": f"released into {candidate} (production-{candidate}): lego-api-gallery v",
        "run_migrations": "migrations: 3 applied (1, 2, 3)",
        "health_check": f"health probe of {world.sandbox.http_url}/{candidate}/health: 3 consecutive answers",
        "shift_10": f"shifted to 10 % ({split_text({live: 90, candidate: 10})}), INSYNC after",
        "soak_10": "soak 10 %: ",
        "shift_50": f"shifted to 50 % ({split_text({live: 50, candidate: 50})}), INSYNC after",
        "approval": "approved by Anonymous via response",
        "shift_100": f"promoted {candidate} to 100 % ({split_text({live: 0, candidate: 100})})",
        "teardown_blue": f"retired {live}",
    }
    stages = timeline.get_by_role("listitem")
    for task, sentence in sentences.items():
        stage = stages.filter(has=timeline.get_by_text(task, exact=True))
        expect(stage.locator("p").first).to_contain_text(sentence)
        expect(stage).to_contain_text("success")
    expect(stages.filter(has=timeline.get_by_text("soak_10", exact=True))).to_contain_text("limit 7 %")
    screenshot(page, "run-timeline")


# -- 2. a failed stage cleared from the UI, then "Mark success" on the approval --------------------
def test_clearing_a_failed_migration_stage_in_the_ui_reruns_it(world: World, page: Page) -> None:
    no_run_active(world)
    before = world.sandbox.weights()
    live, candidate = live_and_candidate(before)
    migration = world.dags / "migrations" / "lego_api" / "V004__add_moc_featured.sql"
    migration.write_text(BROKEN_MIGRATION)
    run_id = f"browser_clear_{uuid.uuid4().hex[:6]}"
    world.airflow.api(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": TIMINGS}
    )
    assert wait_run(world, run_id, timeout=120) == "failed", world.states(run_id)
    tis = world.task_instances(run_id)
    assert (tis["run_migrations"]["state"], tis["run_migrations"]["try_number"]) == ("failed", 1), tis
    assert tis["health_check"]["state"] == "upstream_failed" and tis["rollback"]["state"] == "success", tis
    failure = world.logs(run_id, "run_migrations")["attempt=1.log"]
    assert re.search(r'type \\?"boolen\\?" does not exist', failure), failure[-2000:]  # the log is JSON lines
    assert world.sandbox.weights() == before

    migration.write_text(FIXED_MIGRATION)  # the fix, then the retry from the stage's page
    page.goto(run_url(run_id, "/tasks/run_migrations"))
    page.get_by_role("button", name="Press shift+c to clear").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Clear Task Instance: run_migrations")).to_be_visible()
    expect(dialog.get_by_role("row").filter(has_text="run_migrations")).to_contain_text("Failed")
    confirm = dialog.get_by_role("button", name="Confirm")
    expect(confirm).to_be_enabled()
    screenshot(page, "clear-dialog")
    confirm.click()
    expect(dialog).to_be_hidden()

    def rerun() -> dict[str, Any] | None:
        ti = world.task_instances(run_id)["run_migrations"]
        return ti if ti["try_number"] == 2 and ti["state"] in ("success", "failed") else None

    ti = wait_for("run_migrations to run again", rerun, 90)
    assert ti["state"] == "success", ti
    applied = world.xcom(run_id, "run_migrations")["applied"]
    assert [m["version"] for m in applied] == [4], applied
    assert "attempt=2.log" in world.logs(run_id, "run_migrations")
    wait_awaiting_approval(world, run_id)  # cleared with its downstream stages: the same run resumed
    assert world.sandbox.weights() == {live: 50, candidate: 50}
    page.goto(run_url(run_id, "/tasks/run_migrations"))
    expect(page.get_by_text(re.compile(r"Applied V4 in \d+ ms"))).to_be_visible()  # the log of the second try
    screenshot(page, "cleared-stage-rerun")
    RUNS["resumed"], RUNS["resumed_split_before"] = run_id, before


def test_marking_the_approval_success_in_the_ui_promotes_the_run(world: World, page: Page) -> None:
    run_id, before = earlier("resumed"), earlier("resumed_split_before")
    live, candidate = live_and_candidate(before)
    wait_awaiting_approval(world, run_id)

    page.goto(run_url(run_id, "/tasks/approval"))
    page.get_by_role("button", name="Mark Task Instance as...").click()
    page.get_by_role("menuitem", name="Success").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Mark Task Instance as success: approval")).to_be_visible()
    expect(dialog.get_by_role("row").filter(has_text="approval")).to_contain_text("Awaiting Input")
    confirm = dialog.get_by_role("button", name="Confirm")
    expect(confirm).to_be_enabled()
    screenshot(page, "mark-success")
    confirm.click()
    expect(dialog).to_be_hidden()

    assert wait_run(world, run_id, timeout=120) == "success", world.states(run_id)
    states = world.states(run_id)
    assert {states[t] for t in (*STAGES, *PROMOTION)} == {"success"}, states
    promotion = world.xcom(run_id, "shift_100")
    assert promotion["approval"] == {"via": "marked success in the UI (no response recorded)"}, promotion
    assert world.sandbox.weights() == {live: 0, candidate: 100}
    state = deployment_state(world.sandbox)
    assert (state.phase, state.live) == ("retired", candidate), state
    page.goto(run_url(run_id))
    expect(page.get_by_role("heading", name=run_id, exact=True).first).to_be_visible()
    screenshot(page, "marked-success-run")

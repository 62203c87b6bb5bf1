# ruff: noqa: F811
"""Secrets: no credential or connection password in anything a deployment run leaves behind.

The real deployment DAG runs under ``dag.test()`` with recognisable canary secrets planted where a
worker has them: the ``aws_default`` connection's secret key and session token, a password in the
``lego_db`` connection URL (Postgres trust auth takes any password, so the run still migrates), an
``AIRFLOW__`` secret and AWS credentials in the worker's environment. Then every place a person or
another system reads after the run is searched for each canary:

- the task logs: ``dag.test()`` runs every task in this process and its task loggers write to the
  process's stdout (no log files), so stdout, stderr and the stdlib log records are the task logs.
  Airflow's secrets masker does not filter that output, so the search proves the code itself never
  writes a secret (a worker's masker would only hide what it was told about);
- every XCom of the run, and every task's rendered template fields (``rendered_task_instance_fields``);
- the approval request (``hitl_detail``: subject, body, options, params) and the answer the REST API
  gave the approver;
- what the run wrote to AWS: every version of the state record (its ``reason`` carries a failed
  stage's error, and it is a public TXT record), every change comment, the published versions;
- the notifications it sent (the fast case's DAG sends them to an SNS topic; its SQS queue is read
  back): the rollback's says what broke, which is the failed stage's error.

Each corpus must hold what the run is known to have written there, so an empty or wrong corpus
fails instead of passing. That whole release is slow (``make chaos``); the fast case runs
command-mode migrations whose tool prints its whole environment and its ``DATABASE_URL`` and then
fails: its output reaches the task log and the error that fails the stage (and so the state record),
and none of the worker's secrets may be in it.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest

from bluegreen_provider.localrun import xcom
from bluegreen_provider.sandbox import Sandbox

# The e2e fixtures, requested by name below (hence the redefinitions ruff sees as F811).
from tests.e2e.conftest import E2E_DAGS, deploy, deployment_state, e2e_bundle, sandbox, service_db  # noqa: F401
from tests.e2e.sns_queue import TopicQueue

pytestmark = [pytest.mark.chaos("secrets"), pytest.mark.e2e]

AWS_CONN_SECRET = "canary-aws-conn-secret-4Kq9"
AWS_CONN_TOKEN = "canary-aws-conn-session-token-7Zp2"
DB_PASSWORD = "canary-db/pass word-3Vx8"  # "/" and " " so the URL carries it quoted
WORKER_SECRETS = {
    "AIRFLOW__SMTP__SMTP_PASSWORD": "canary-airflow-smtp-password-9Lm4",
    "AIRFLOW__CELERY__BROKER_URL": "redis://:canary-airflow-broker-password-2Rt6@redis:6379/0",
    "AIRFLOW_CONN_PAYMENTS_API": "http://svc:canary-payments-conn-password-5Hn1@payments.internal",
    "AWS_SECRET_ACCESS_KEY": "canary-worker-aws-secret-8Wd3",
    "AWS_SESSION_TOKEN": "canary-worker-aws-session-token-6Yc5",
}


@pytest.fixture
def canaries(sandbox: Sandbox, service_db: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Plant the canaries where a worker keeps secrets; returns label → text that must never appear."""
    conn = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])
    conn["password"] = AWS_CONN_SECRET
    conn["extra"]["aws_session_token"] = AWS_CONN_TOKEN
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    assert service_db.startswith("postgresql://postgres@")
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEGO_DB", service_db.replace("postgres@", f"postgres:{quote(DB_PASSWORD, safe='')}@", 1)
    )
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    found = {
        "aws_default secret key": AWS_CONN_SECRET,
        "aws_default session token": AWS_CONN_TOKEN,
        "lego_db password": DB_PASSWORD,
        "lego_db password, URL-quoted": quote(DB_PASSWORD, safe=""),
        "lego_db password, form-quoted": DB_PASSWORD.replace(" ", "+").replace("/", "%2F"),
        **{f"worker {name}": value for name, value in WORKER_SECRETS.items()},
        "worker payments connection password": "canary-payments-conn-password-5Hn1",
        "worker broker password": "canary-airflow-broker-password-2Rt6",
    }
    return found


# -- the corpora -------------------------------------------------------------------------------------
def task_logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    out, err = capfd.readouterr()
    return "\n".join([out, err, caplog.text])


def run_xcoms(dag_id: str, run_id: str) -> str:
    """Every XCom of the run, each key of each task, deserialised as a task would read it."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)).all()
        keys = sorted({(row.task_id, row.key) for row in rows})
    values = {f"{task}/{key}": xcom(dag_id, run_id, task, key) for task, key in keys}
    return json.dumps(values, default=str, sort_keys=True) if values else ""


def rendered_fields(dag_id: str, run_id: str) -> dict[str, str]:
    """task id → its rendered template fields as Airflow stored them for the UI's Rendered tab."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(RTIF).where(RTIF.dag_id == dag_id, RTIF.run_id == run_id)).all()
        return {row.task_id: json.dumps([row.rendered_fields, row.k8s_pod_yaml], default=str) for row in rows}


def approval_requests(dag_id: str, run_id: str) -> str:
    """Every human-in-the-loop request of the run as stored (what the UI and a notifier show)."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(HITLDetail)
            .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        stored = [
            {c.name: getattr(row, c.name) for c in HITLDetail.__table__.columns if c.name != "ti_id"} for row in rows
        ]
    return json.dumps(stored, default=str) if stored else ""


def aws_written(sandbox: Sandbox) -> str:
    """Every state record version and change comment Route53 committed, and the published versions."""
    from bluegreen_provider.sandbox import route53_rules

    changes = [
        {"comment": c.comment, "record_sets": c.record_sets} for c in route53_rules.CHANGES.zone(sandbox.hosted_zone_id)
    ]
    lambdas = sandbox.clients()("lambda")
    versions = [
        v
        for fn in lambdas.list_functions()["Functions"]
        for v in lambdas.list_versions_by_function(FunctionName=fn["FunctionName"])["Versions"]
    ]
    return json.dumps({"changes": changes, "versions": versions}, default=str)


def leaks(corpora: dict[str, str], canaries: dict[str, str]) -> list[str]:
    return [
        f"{label} in {where}" for where, text in corpora.items() for label, secret in canaries.items() if secret in text
    ]


# -- the runs ----------------------------------------------------------------------------------------
@pytest.mark.slow  # a whole release with an approval: 50-80 s here
def test_a_deployment_leaves_no_secret_in_logs_xcom_rendered_fields_or_the_approval(
    deploy, sandbox, canaries, capfd, caplog
) -> None:
    capfd.readouterr()  # only what the run writes
    # A soak short of requests on a busy machine passes: the verdict is not what this run is about.
    result = deploy("v2", no_data_policy="pass")
    assert result.state == "success", result.states
    assert sandbox.weights() == {"blue": 0, "green": 100}  # the run did its work with the planted connections

    logs = task_logs(capfd, caplog)
    rendered = rendered_fields(result.dag_id, result.run_id)
    corpora = {
        "task logs": logs,
        "XCom": run_xcoms(result.dag_id, result.run_id),
        **{f"rendered fields of {task}": text for task, text in rendered.items()},
        "approval request (hitl_detail)": approval_requests(result.dag_id, result.run_id),
        "approval request (REST answer)": json.dumps(result.responder.request, default=str),
        "AWS state the run wrote": aws_written(sandbox),
    }
    print({where: len(text) for where, text in corpora.items()})

    # Each corpus holds what the run wrote there, so a search of nothing cannot pass.
    assert "Applied 3 migration(s)" in logs and "[DAG TEST] end task task_id=teardown_blue" in logs
    assert '"run_migrations/return_value"' in corpora["XCom"] and '"plan/return_value"' in corpora["XCom"]
    assert {"plan", "run_migrations", "shift_10", "approval", "teardown_blue"} <= set(rendered), sorted(rendered)
    assert "lego_db" in rendered["run_migrations"]
    assert "Promote lego-api green to 100 %?" in corpora["approval request (hitl_detail)"]
    assert "Soak results" in corpora["approval request (REST answer)"]
    assert "retired" in corpora["AWS state the run wrote"]  # the state record's last phase
    assert not leaks(corpora, canaries)


def test_a_migration_tool_that_prints_its_environment_shows_no_worker_secret(
    deploy, sandbox, canaries, capfd, caplog
) -> None:
    from tests.e2e.dags.variants import NOTIFIED_TOPIC  # here: building the variants registers them

    notifications = TopicQueue(sandbox, NOTIFIED_TOPIC)
    capfd.readouterr()
    result = deploy("v2", dag_file=E2E_DAGS / "variants.py", dag_name="command_migrations")
    assert result.states["run_migrations"] == "failed", result.states
    assert result.states["health_check"] != "success" and result.states["rollback"] == "success", result.states
    assert sandbox.weights() == {"blue": 100, "green": 0}  # traffic never moved
    state = deployment_state(sandbox)
    assert state.reason.startswith("run_migrations failed: migration command exited with code 3"), state.reason

    logs = task_logs(capfd, caplog)
    corpora = {
        "task logs": logs,
        "XCom": run_xcoms(result.dag_id, result.run_id),
        **{f"rendered fields of {task}": text for task, text in rendered_fields(result.dag_id, result.run_id).items()},
        "AWS state the run wrote": aws_written(sandbox),
        "notifications": json.dumps(notifications.messages()),
    }
    printed = {line.split("=", 1)[0].removeprefix("| ") for line in _tool_lines(logs)}
    print({where: len(text) for where, text in corpora.items()}, sorted(printed))

    # The tool ran and printed its environment into the task log, and the corpora hold the run.
    assert {"PATH", "HOME", "DATABASE_URL", "PGOPTIONS"} <= printed, sorted(printed)
    assert '"plan/return_value"' in corpora["XCom"]
    assert "lego_db" in corpora["rendered fields of run_migrations"]
    # The rollback's notification carries the stage's error, the tool's output tail included.
    assert "run_migrations failed: migration command exited with code 3" in corpora["notifications"]
    assert "DATABASE_URL=***" in corpora["notifications"]
    assert not leaks(corpora, canaries)
    assert not {name for name in printed if name.startswith(("AWS_", "AIRFLOW", "PG")) and name != "PGOPTIONS"}
    # Its DATABASE_URL is masked in the log and in the error the stage failed with (the state record's
    # reason, where the output tail is cut to the record's limit).
    assert "| DATABASE_URL=***" in logs and "| url=***" in logs
    assert "DATABASE_URL=***" in state.reason


def _tool_lines(logs: str) -> list[str]:
    """The migration tool's output lines as the hook logged them (``| NAME=value``)."""
    lines = []
    for line in logs.splitlines():
        _, sep, rest = line.partition("[info     ] | ")
        if sep and "=" in rest:
            lines.append(rest.split(" [airflow.task.hooks", 1)[0])
    return lines

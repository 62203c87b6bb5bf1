"""A migration command's environment: the allow-list, the extra variables, and their checks.

No database: the rules are plain functions, and every refusal must come before anything connects
(the operator's at parse time, the spec's when the DAG file is read).
"""

from __future__ import annotations

import pytest
from airflow.sdk import DAG

from bluegreen_provider.command_env import command_env_problems, command_environment
from bluegreen_provider.migrations import MigrationConfigError, check_command_env
from bluegreen_provider.operators.migrations import RunMigrationsOperator
from bluegreen_provider.spec import DeploymentSpec, SpecError

URL = "postgresql://app:hunter2-canary@db.internal:5432/app"
WORKER = {
    "PATH": "/usr/local/bin:/usr/bin",
    "HOME": "/home/airflow",
    "USER": "airflow",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "LC_MESSAGES": "C",
    "TZ": "UTC",
    "TMPDIR": "/tmp/worker",
    "PYTHONPATH": "/opt/airflow/dags",
    "AWS_ACCESS_KEY_ID": "AKIA-canary",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-canary",
    "AWS_SESSION_TOKEN": "aws-token-canary",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:meta-canary@meta/airflow",
    "AIRFLOW__CORE__FERNET_KEY": "fernet-canary",
    "AIRFLOW_CONN_LEGO_DB": "postgresql://app:conn-canary@db/app",
    "PGPASSWORD": "pgpassword-canary",
    "PGHOST": "elsewhere",
    "PGOPTIONS": "-c work_mem=1GB",
    "HTTPS_PROXY": "http://user:proxy-canary@proxy:3128",
    "NODE_OPTIONS": "--max-old-space-size=512",
}


def test_the_tool_gets_the_allow_list_and_the_database_only():
    env = command_environment(URL, 7000, worker_env=WORKER)

    assert env == {
        "PATH": "/usr/local/bin:/usr/bin",
        "HOME": "/home/airflow",
        "USER": "airflow",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "LC_MESSAGES": "C",
        "TZ": "UTC",
        "TMPDIR": "/tmp/worker",
        "DATABASE_URL": URL,
        "PGOPTIONS": "-c statement_timeout=7000",  # the worker's PGOPTIONS is not the tool's
    }
    assert not [v for v in env.values() if "canary" in v and v != URL]


def test_named_variables_are_added_and_given_ones_win():
    env = command_environment(
        URL,
        7000,
        env={"NPM_CONFIG_LOGLEVEL": "warn", "TZ": "Europe/Copenhagen", "PGOPTIONS": "-c search_path=app", "N": 3},
        pass_env=["NODE_OPTIONS", "PYTHONPATH", "NOT_ON_THIS_WORKER"],
        worker_env=WORKER,
    )

    assert env["NODE_OPTIONS"] == "--max-old-space-size=512"
    assert env["PYTHONPATH"] == "/opt/airflow/dags"
    assert "NOT_ON_THIS_WORKER" not in env
    assert (env["NPM_CONFIG_LOGLEVEL"], env["TZ"], env["N"]) == ("warn", "Europe/Copenhagen", "3")
    # The runner's statement timeout comes last, so it wins over a timeout the project sets itself.
    assert env["PGOPTIONS"] == "-c search_path=app -c statement_timeout=7000"
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AIRFLOW_CONN_LEGO_DB" not in env


@pytest.mark.parametrize(
    ("env", "pass_env", "problem"),
    [
        ({"1BAD": "x"}, None, "env: '1BAD' is not a variable name (letters, digits, _)"),
        ({"A-B": "x"}, None, "env: 'A-B' is not a variable name (letters, digits, _)"),
        ({"X; rm -rf /": "x"}, None, "env: 'X; rm -rf /' is not a variable name (letters, digits, _)"),
        ({"": "x"}, None, "env: '' is not a variable name (letters, digits, _)"),
        ({"DATABASE_URL": "postgresql://x"}, None, "env: DATABASE_URL is set from the connection, it cannot be given"),
        ({"FLAG": True}, None, "env.FLAG must be a string, got True"),
        ({"NONE": None}, None, "env.NONE must be a string, got None"),
        ({"LIST": ["a"]}, None, "env.LIST must be a string, got ['a']"),
        ({"NUL": "a\x00b"}, None, "env.NUL must be at most 32768 characters without NUL, got 'a\\x00b'"),
        ("A=1", None, "env must be a mapping of variable names to strings, got 'A=1'"),
        (None, "PATH", "pass_env must be a list of variable names, got 'PATH'"),
        (None, ["$HOME"], "pass_env: '$HOME' is not a variable name (letters, digits, _)"),
        (None, [7], "pass_env: 7 is not a variable name (letters, digits, _)"),
        (None, ["DATABASE_URL"], "pass_env: DATABASE_URL is set from the connection, it cannot be copied"),
        (None, ["AIRFLOW__CORE__FERNET_KEY"], "pass_env: AIRFLOW__CORE__FERNET_KEY is Airflow's own setting or secret"),
        (None, ["AIRFLOW_CONN_LEGO_DB"], "pass_env: AIRFLOW_CONN_LEGO_DB is Airflow's own setting or secret"),
        (None, ["airflow_var_token"], "pass_env: airflow_var_token is Airflow's own setting or secret"),
        ({"TZ": "UTC"}, ["TZ"], "pass_env: TZ is also given in env; give it once"),
    ],
)
def test_bad_variables_are_refused_in_one_line(env, pass_env, problem):
    assert [p[: len(problem)] for p in command_env_problems(env, pass_env)] == [problem]
    with pytest.raises(MigrationConfigError) as err:
        check_command_env(env, pass_env)
    assert "\n" not in str(err.value) and str(err.value).startswith(problem)


def test_a_huge_value_is_refused_and_quoted_short():
    (problem,) = command_env_problems({"BIG": "x" * 100_000}, None)
    assert problem.startswith("env.BIG must be at most 32768 characters without NUL, got 'xxx")
    assert problem.endswith("(100002 characters)") and len(problem) < 200


def test_every_problem_is_listed_at_once():
    with pytest.raises(MigrationConfigError) as err:
        check_command_env({"1X": "a", "Y": None}, ["AIRFLOW__X", "OK_NAME"])
    assert str(err.value) == (
        "env: '1X' is not a variable name (letters, digits, _); env.Y must be a string, got None; "
        "pass_env: AIRFLOW__X is Airflow's own setting or secret, it is never copied"
    )


def operator(**kwargs) -> RunMigrationsOperator:
    with DAG("lego_api_blue_green", schedule=None):
        return RunMigrationsOperator(task_id="migrate", postgres_conn_id="lego_db", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command": "make migrate", "env": {"BAD NAME": "1"}}, r"^env: 'BAD NAME' is not a variable name"),
        ({"command": "make migrate", "pass_env": ["AIRFLOW_CONN_AWS_DEFAULT"]}, r"^pass_env: AIRFLOW_CONN_AWS_DEF"),
        ({"command": "make migrate", "env": {"DATABASE_URL": "{{ var.value.url }}"}}, r"^env: DATABASE_URL is set"),
        ({"command": "make migrate", "pass_env": ["{{ params.x }}", "A-B"]}, r"^pass_env: 'A-B' is not a variable"),
        ({"migrations_folder": "/x", "env": {"A": "1"}}, r"^env and pass_env are for a migration command"),
    ],
)
def test_operator_refuses_bad_variables_at_parse_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        operator(**kwargs)


def test_operator_leaves_templates_for_after_rendering():
    op = operator(command="make migrate", env={"TOKEN": "{{ conn.npm.password }}"}, pass_env="{{ params.names }}")
    assert "env" in op.template_fields and "pass_env" in op.template_fields
    assert op.env == {"TOKEN": "{{ conn.npm.password }}"} and op.pass_env == "{{ params.names }}"


LEGO = {
    "service": "lego-api",
    "hosted_zone": "lego-mocs.com",
    "record_name": "api.lego-mocs.com",
    "functions": [{"name": "lego-api-moc", "version": "1"}],
}


def test_spec_carries_the_variables_and_checks_them_with_the_same_rules():
    good = DeploymentSpec.from_dict(
        {**LEGO, "migrations": {"conn_id": "lego_db", "command": "make migrate", "env": {"A": "1"}, "pass_env": ["B"]}}
    )
    assert (good.migrations.env, good.migrations.pass_env) == ({"A": "1"}, ["B"])

    with pytest.raises(SpecError) as err:
        DeploymentSpec.from_dict(
            {
                **LEGO,
                "migrations": {"conn_id": "lego_db", "folder": "dags/migrations", "pass_env": ["AIRFLOW__X", "OK"]},
            }
        )
    assert err.value.problems == [
        "migrations: env and pass_env are for a command; SQL files run in the runner",
        "migrations.pass_env: AIRFLOW__X is Airflow's own setting or secret, it is never copied",
    ]

"""Test-only Airflow DAG variants of the lego-api deployment, built with the same factory and config."""

from __future__ import annotations

import runpy
from pathlib import Path

from bluegreen_provider.dag_factory import deployment_dag, rollback_dag

REPO = Path(__file__).resolve().parents[3]
LEGO_API = runpy.run_path(str(REPO / "dags" / "lego_api_service.py"))["lego_api"]()

broken_migrations = deployment_dag(
    "e2e_broken_migrations",
    {
        **LEGO_API,
        "service": "lego-api-broken-migrations",
        "migrations": {"conn_id": "lego_db", "folder": str(REPO / "tests" / "fixtures" / "migrations" / "failing")},
    },
)

five_25_100 = deployment_dag(
    "e2e_5_25_100",
    {
        **LEGO_API,
        "service": "lego-api-5-25-100",
        "steps": [{"weight": 5, "soak_seconds": 300}, {"weight": 25, "soak_seconds": 300}, {"weight": 100}],
    },
)

quick_health = deployment_dag(
    "e2e_quick_health",
    {**LEGO_API, "service": "lego-api-quick-health", "health": {"deadline_seconds": 8, "probe_interval_seconds": 1}},
)

# Service-wide errors (tests/e2e/test_canary_analysis.py): no alarm, and a candidate-vs-live test at
# alpha 0.001, so the 25 % errors both slots share blame green by chance once in a thousand runs, not
# once in twenty.
no_alarms = deployment_dag(
    "e2e_no_alarms", {**LEGO_API, "service": "lego-api-no-alarms", "alarms": [], "comparison_alpha": 0.001}
)

# Notifications (tests/e2e/test_notifications.py): every event to an SNS topic in the sandbox, which the test
# creates with an SQS queue subscribed and reads back. moto's default account owns the topic. No "overdue":
# dag.test() never creates the deadline (its runs have no queued_at), and a successful dag.test() of a DAG
# with a Deadline Alert crashes at the end (apache/airflow#73428).
NOTIFIED_TOPIC = "arn:aws:sns:us-east-1:123456789012:bluegreen-deployments"
notified = deployment_dag(
    "e2e_notified",
    {
        **LEGO_API,
        "service": "lego-api-notified",
        "notifications": {
            "sns": {"target_arn": NOTIFIED_TOPIC},
            "events": ["approval_needed", "shifted", "held", "rolled_back", "promoted", "torn_down"],
        },
    },
)

# Command-mode migrations whose tool prints the environment it was given and its DATABASE_URL, then
# fails: tests/chaos/test_secrets.py reads both back from the task log, the stage's error and the
# notifications it sends to the SNS topic.
command_migrations = deployment_dag(
    "e2e_command_migrations",
    {
        **LEGO_API,
        "service": "lego-api-command-migrations",
        "migrations": {"conn_id": "lego_db", "command": 'env; echo "url=$DATABASE_URL"; exit 3'},
        "notifications": {"sns": {"target_arn": NOTIFIED_TOPIC}, "events": ["rolled_back", "held", "shifted"]},
    },
)

# The IAM policy's recording (tests/e2e/test_iam_policy.py): every stage the story has, with the prewarm and
# notifications on, so the recorded AWS calls cover every action the deployment needs.
audited = deployment_dag(
    "e2e_audited",
    {
        **LEGO_API,
        "service": "lego-api-audited",
        "prewarm_invocations": 2,
        "notifications": {
            "sns": {"target_arn": NOTIFIED_TOPIC},
            "events": ["approval_needed", "shifted", "held", "rolled_back", "promoted", "torn_down"],
        },
    },
)

# The story's scenarios under Lambda alias routing (tests/e2e/test_deploy_dag.py, parametrised by router):
# the same config, one live alias per function carrying the split; the sandbox routes every request
# through it, and each version is judged on its ExecutedVersion metrics (no per-slot API behind one
# alias). Its emergency-rollback DAG is the same config's.
ALIAS_ROUTED = {**LEGO_API, "router": "lambda_alias", "metrics_source": "lambda"}
alias_routed = deployment_dag("e2e_alias_routed", ALIAS_ROUTED)
alias_rollback = rollback_dag("e2e_alias_rollback", ALIAS_ROUTED)

"""Bad inputs: malformed or hostile input is refused with one clear line per problem, before any change.

Each case goes in where a person would put it:

- ``trigger``: the repo DAG's run params, validated as the scheduler does when a run is triggered
  (the DAG serialized and read back, the conf merged, every param validated): ParamValidationError.
- ``parse``: a DAG file's service config, validated when the file is parsed (``deployment_dag``): SpecError.
- ``plan``: input the trigger form accepts (a conf, a service config, or an AWS world that does not
  match it), refused by the DAG's rendered plan task run against moto: AirflowFailException.

Every case reads the whole moto state back before and after (zones and every record set, the state
TXT record among them, zone tags, health checks, committed change batches, functions, versions,
aliases, alarms with their state, S3) and compares the bytes, and checks that the service's
migration database (the repo DAG's ``lego_db``, a fresh PostgreSQL database) has no ledger and no table.
"""

from __future__ import annotations

import copy
import gc
import json
import re
import runpy
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import psycopg2
import pytest
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization
from moto import mock_aws

from bluegreen_provider.dag_factory import deployment_dag
from bluegreen_provider.sandbox import world as story
from bluegreen_provider.sandbox.releases import ReleaseCatalog
from bluegreen_provider.spec import SpecError

pytestmark = pytest.mark.chaos("bad inputs")

REPO = Path(__file__).resolve().parents[2]
MIGRATION_FIXTURES = REPO / "tests" / "fixtures" / "migrations"
REGION = "us-east-1"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
TEN_MB = "x" * (10 * 1024 * 1024)
# A problem line a person can read in a log or the UI; a 10 MB echo of the input is not one.
LONGEST_LINE = 2000
DROP = object()  # a config override that removes the key


# -- the world the repo's DAG deploys into ----------------------------------------------------------
@dataclass
class Env:
    releases: Path
    database: str

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(dbname=self.database, **PG)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def tables(self) -> list[str]:
        """Every table of the service database (the migration ledger would be one)."""
        rows = self.query(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
        return [r[0] for r in rows]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """Releases on disk, AWS through moto in this process, and a fresh database as ``lego_db``."""
    releases = tmp_path_factory.mktemp("releases")
    ReleaseCatalog().write_zip("v2", releases)
    name = f"bg_chaos_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("BLUEGREEN_RELEASES_DIR", str(releases))
            mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": REGION}}))
            mp.setenv("AIRFLOW_CONN_LEGO_DB", f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{name}")
            yield Env(releases, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def service_config() -> dict[str, Any]:
    """The lego API's service config, exactly as the repo's DAG file builds it."""
    return runpy.run_path(str(REPO / "dags" / "lego_api_service.py"))["lego_api"]()


def scheduler_view(dag: Any) -> Any:
    """The DAG as the scheduler holds it: serialized and read back."""
    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))


@pytest.fixture(scope="module")
def repo_dag(env: Env) -> tuple[Any, Any]:
    """The repo's deployment DAG (as parsed, as scheduled)."""
    dag = runpy.run_path(str(REPO / "dags" / "blue_green_deploy.py"))["deploy"]
    return dag, scheduler_view(dag)


class World:
    """The story's AWS world in moto (lego-mocs.com, api.lego-mocs.com blue 100 / green 0, four
    functions with both aliases on version 1, the alarms), seeded by the sandbox's own seeding."""

    def __init__(self) -> None:
        self.mock = mock_aws(config={"lambda": {"use_docker": False}})
        self.mock.start()
        self.route53 = boto3.client("route53", region_name=REGION)
        self.lam = boto3.client("lambda", region_name=REGION)
        seeded = story.seed(
            lambda service: boto3.client(service, region_name=REGION),
            ReleaseCatalog(),
            rate_per_second=10,
            flush_seconds=1,
        )
        self.zone_id = seeded.hosted_zone_id
        self.other_zone_id = ""

    def stop(self) -> None:
        self.mock.stop()

    def add_zone(self, name: str, record: str) -> str:
        """Another hosted zone with a weighted blue/green record of its own; returns its id."""
        zone_id = self.route53.create_hosted_zone(Name=name, CallerReference=f"chaos-{name}")["HostedZone"]["Id"]
        zone_id = zone_id.rsplit("/", 1)[-1]
        sets = []
        for slot in ("blue", "green"):
            record_set = story.weighted_record(slot, 100 if slot == "blue" else 0)
            sets.append({"Action": "CREATE", "ResourceRecordSet": {**record_set, "Name": record}})
        self.route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": sets})
        self.other_zone_id = zone_id
        return zone_id

    def add_simple_record(self, name: str) -> None:
        self.route53.change_resource_record_sets(
            HostedZoneId=self.zone_id,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": "A",
                            "TTL": 60,
                            "ResourceRecords": [{"Value": "192.0.2.10"}],
                        },
                    }
                ]
            },
        )

    def set_weights(self, blue: int, green: int) -> None:
        changes = [
            {"Action": "UPSERT", "ResourceRecordSet": story.weighted_record(slot, weight)}
            for slot, weight in (("blue", blue), ("green", green))
        ]
        self.route53.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": changes})


class Worlds:
    """One seeded world for the module (seeding per case would dominate the run), replaced by a
    fresh one after a case that left it different from how it was seeded."""

    def __init__(self, read_state: Callable[[], bytes]) -> None:
        self.read_state = read_state
        self.current = World()
        self.pristine = read_state()

    def settle(self, state: bytes) -> None:
        """Called with the state a case left behind."""
        if state != self.pristine:
            self.current.stop()
            self.current = World()
            self.pristine = self.read_state()


@pytest.fixture(scope="module")
def worlds(env: Env, aws_state: Callable[[], bytes]) -> Iterator[Worlds]:
    holder = Worlds(aws_state)
    yield holder
    holder.current.stop()


@pytest.fixture
def world(worlds: Worlds) -> World:
    return worlds.current


@pytest.fixture(scope="module", autouse=True)
def long_lived_objects_frozen(worlds: Worlds, repo_dag: tuple[Any, Any]) -> Iterator[None]:
    """Airflow, moto and the seeded world are millions of objects that live as long as the module;
    frozen, the garbage collector stops rescanning them at every full collection (a quarter of the
    module's time otherwise)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


# -- running the entry points ---------------------------------------------------------------------
class _TaskInstance:
    """What the plan task uses of its task instance (only a dry run pushes to XCom)."""

    task_id = "plan"
    map_index = -1

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)


def trigger(scheduled_dag: Any, conf: Mapping[str, Any]) -> dict[str, Any]:
    """The params of a run triggered with ``conf``, validated as the scheduler does when creating it."""
    return scheduled_dag.params.deep_merge(conf).validate()


_HOOKS = ("route53", "lambdas", "cloudwatch")


def run_plan(dag: Any, params: Mapping[str, Any], conf: Mapping[str, Any], hooks: dict[str, Any]) -> Any:
    """A fresh copy of the DAG's plan task, rendered with the run's params and executed against moto.

    ``hooks`` carries the stage's AWS hooks from one case to the next: each builds a botocore session
    (about 0.3 s), which would be most of this module's time; what the task decides is its own.
    """
    plan = copy.deepcopy(dag.task_dict["plan"])
    plan.__dict__.update(hooks)
    plan.render_template_fields({"params": dict(params)})
    dag_run = SimpleNamespace(dag_id=dag.dag_id, run_id="manual__chaos", conf=dict(conf))
    try:
        return plan.execute({"ti": _TaskInstance(), "task": plan, "dag_run": dag_run, "params": dict(params)})
    finally:
        hooks.update({name: plan.__dict__[name] for name in _HOOKS if name in plan.__dict__})


@pytest.fixture(scope="module")
def stage_hooks() -> dict[str, Any]:
    return {}


def with_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(config)
    for key, value in overrides.items():
        if value is DROP:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


# -- what a refusal must look like ----------------------------------------------------------------
def problem_lines(message: str) -> list[str]:
    """The problems a refusal lists: one ``  - `` line each under an ``invalid deployment spec:``
    header, or the whole message when it names a single problem (then it is one line)."""
    lines = message.splitlines()
    assert lines, "a refusal must say why"
    if lines[0].endswith("invalid deployment spec:"):
        assert len(lines) > 1 and all(line.startswith("  - ") for line in lines[1:]), message[:LONGEST_LINE]
        return [line[4:] for line in lines[1:]]
    assert len(lines) == 1, f"one problem, one line: {message[:LONGEST_LINE]!r}"
    return lines


def assert_clear(message: str, problems: Sequence[str], expected: Sequence[str]) -> None:
    """Exactly the expected problems, each on one readable line of its own, and no traceback."""
    assert "Traceback" not in message and 'File "' not in message, message[:LONGEST_LINE]
    for line in problems:
        assert len(line) <= LONGEST_LINE, f"a problem line of {len(line)} characters: {line[:200]!r}…"
    for pattern in expected:
        hits = [line for line in problems if re.search(pattern, line)]
        assert len(hits) == 1, f"{pattern!r} should name exactly one problem line of {problems}"
    assert len(problems) == len(expected), f"expected {len(expected)} problem(s), got {problems}"


@pytest.fixture
def unchanged(worlds: Worlds, aws_state: Callable[[], bytes], env: Env) -> Iterator[None]:
    """The moto state byte for byte as before the case, and no migration in the service database."""
    before = aws_state()
    yield
    after = aws_state()
    worlds.settle(after)
    assert after == before, "a refused input changed AWS"
    assert env.tables() == [], "a refused input touched the service database"


def _steps(*weights: int, soak: Any = 60) -> list[dict[str, Any]]:
    return [{"weight": w, "soak_seconds": soak if w < 100 else 0} for w in weights]


def _slots(**changes: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A slots override: the service's slots with some fields of one colour changed."""

    def build(config: Mapping[str, Any]) -> dict[str, Any]:
        slots = copy.deepcopy(dict(config["slots"]))
        for colour, fields in changes.items():
            slots[colour] = {**slots[colour], **fields}
        return slots

    return build


# -- trigger: the run params the scheduler validates ----------------------------------------------
TRIGGER_CASES = [
    pytest.param(
        {"steps": _steps(10, 50, 100, soak=-60)}, r"param steps: -60 is less than the minimum of 0", id="negative-soak"
    ),
    pytest.param(
        {"steps": [{"weight": 0}, {"weight": 100}]}, r"param steps: 0 is less than the minimum of 1", id="weight-0"
    ),
    pytest.param(
        {"steps": [{"weight": 10}, {"weight": 150}]},
        r"param steps: 150 is greater than the maximum of 100",
        id="weight-150",
    ),
    pytest.param(
        {"steps": [{"weight": "10"}, {"weight": 100}]},
        r"param steps: '10' is not of type 'integer'",
        id="weight-as-text",
    ),
    pytest.param(
        {"steps": [{"weight": True}, {"weight": 100}]},
        r"param steps: True is not of type 'integer'",
        id="weight-boolean",
    ),
    pytest.param({"steps": []}, r"param steps: \[\] should be non-empty", id="no-steps"),
    pytest.param(
        {"steps": [{"weight": 10, "soak": 300}, {"weight": 100}]},
        r"param steps: Additional properties are not allowed \('soak' was unexpected\)",
        id="step-key-misspelt",
    ),
    pytest.param(
        {"steps": _steps(10, 50, 100, soak=10**12)},
        r"param steps: 1000000000000 is greater than the maximum of 31622400",
        id="soak-huge",
    ),
    pytest.param(
        {"error_rate_threshold_pct": 0},
        r"param error_rate_threshold_pct: 0 is less than or equal to the minimum of 0",
        id="threshold-0",
    ),
    pytest.param(
        {"error_rate_threshold_pct": 250},
        r"param error_rate_threshold_pct: 250 is greater than the maximum of 100",
        id="threshold-250",
    ),
    pytest.param(
        {"error_rate_threshold_pct": "5"},
        r"param error_rate_threshold_pct: '5' is not of type 'number'",
        id="threshold-as-text",
    ),
    pytest.param(
        {"error_rate_threshold_pct": True},
        r"param error_rate_threshold_pct: True is not of type 'number'",
        id="threshold-boolean",
    ),
    pytest.param(
        {"min_requests": -1}, r"param min_requests: -1 is less than the minimum of 0", id="min-requests-negative"
    ),
    pytest.param(
        {"min_requests": 2.5}, r"param min_requests: 2.5 is not of type 'integer'", id="min-requests-fraction"
    ),
    pytest.param(
        {"min_requests": False}, r"param min_requests: False is not of type 'integer'", id="min-requests-boolean"
    ),
    pytest.param(
        {"approval_mode": "yes"},
        r"param approval_mode: 'yes' is not one of \['required', 'auto'\]",
        id="approval-mode-yes",
    ),
    pytest.param(
        {"post_promotion_policy": "maybe"},
        r"param post_promotion_policy: 'maybe' is not one of \['rollback', 'notify', 'off'\]",
        id="post-promotion-maybe",
    ),
    pytest.param(
        {"comparison_margin": 0.5}, r"param comparison_margin: 0.5 is less than the minimum of 1", id="margin-0.5"
    ),
    pytest.param(
        {"no_data_policy": "ignore"},
        r"param no_data_policy: 'ignore' is not one of \['fail', 'pass'\]",
        id="no-data-ignore",
    ),
    pytest.param(
        {"approval_timeout_policy": "wait"},
        r"param approval_timeout_policy: 'wait' is not one of \['hold', 'rollback'\]",
        id="timeout-policy-wait",
    ),
    pytest.param(
        {"approval_timeout_seconds": "1d"},
        r"param approval_timeout_seconds: '1d' is not of type 'integer'",
        id="timeout-as-text",
    ),
    pytest.param(
        {"retention_seconds": -1}, r"param retention_seconds: -1 is less than the minimum of 0", id="retention-negative"
    ),
    pytest.param(
        {"retention_seconds": 10**30},
        r"param retention_seconds: 10{30} is greater than the maximum of 31622400",
        id="retention-huge",
    ),
    pytest.param(
        {"poll_interval_seconds": float("inf")},
        r"param poll_interval_seconds: inf is greater than the maximum of 31622400",
        id="poll-infinity",
    ),
    pytest.param(
        {"poll_interval_seconds": 0},
        r"param poll_interval_seconds: 0 is less than or equal to the minimum of 0",
        id="poll-0",
    ),
    pytest.param(
        {"metrics_period_seconds": 0}, r"param metrics_period_seconds: 0 is less than the minimum of 1", id="period-0"
    ),
    pytest.param({"dry_run": "yes"}, r"param dry_run: 'yes' is not of type 'boolean'", id="dry-run-yes"),
    pytest.param({"functions": []}, r"param functions: \[\] should be non-empty", id="no-functions"),
    pytest.param({"functions": [{"name": ""}]}, r"param functions: '' should be non-empty", id="function-name-empty"),
    pytest.param(
        {"functions": [{"name": "lego-api-checkout"}]},
        r"param functions: 'lego-api-checkout' is not one of \['lego-api-moc', ",
        id="function-not-in-service",
    ),
    pytest.param(
        {"functions": [{"name": "lego-api-moc\n"}]},
        r"param functions: 'lego-api-moc\\n' is not one of",
        id="function-name-newline",
    ),
    pytest.param(
        {"functions": [{"name": "lego-api-moc", "zip": "v2.zip"}]},
        r"param functions: Additional properties are not allowed \('zip' was unexpected\)",
        id="function-key-misspelt",
    ),
    pytest.param({"release": "v2"}, r"param release: 'v2' is not of type 'object', 'null'", id="release-as-text"),
    pytest.param(
        {"release": {"s3_key": "lego-api/v2.zip"}},
        r"param release: 's3_bucket' is a dependency of 's3_key'",
        id="release-key-without-bucket",
    ),
]


@pytest.mark.parametrize(("conf", "expected"), TRIGGER_CASES)
def test_refused_when_the_run_is_triggered(repo_dag, unchanged, conf, expected):
    _, scheduled = repo_dag
    with pytest.raises(ParamValidationError) as refused:
        trigger(scheduled, conf)
    message = str(refused.value)
    # Airflow's message: the first line names the param and the problem, jsonschema's context follows.
    headline = message.splitlines()[0]
    assert headline.startswith("Invalid input for param "), headline
    assert_clear(message, [headline], [expected])


# -- parse: the service config in a DAG file ------------------------------------------------------
PARSE_CASES = [
    pytest.param(
        {"error_rate_threshold_pct": float("nan")},
        [r"^error_rate_threshold_pct must be .*got nan$"],
        id="threshold-nan",
    ),
    pytest.param(
        {"error_rate_threshold_pct": "5"}, [r"^error_rate_threshold_pct must be .*got '5'$"], id="threshold-as-text"
    ),
    pytest.param(
        {"error_rate_threshold_pct": "five"},
        [r"^error_rate_threshold_pct must be .*got 'five'$"],
        id="threshold-not-a-number",
    ),
    pytest.param(
        {"error_rate_threshold_pct": True}, [r"^error_rate_threshold_pct must be .*got True$"], id="threshold-boolean"
    ),
    pytest.param({"comparison_margin": float("inf")}, [r"^comparison_margin must be .*got inf$"], id="margin-infinity"),
    pytest.param(
        {"comparison_margin": 0.5}, [r"^comparison_margin must be a .*number >= 1.*got 0.5$"], id="margin-0.5"
    ),
    pytest.param(
        {"comparison_alpha": float("nan")}, [r"^comparison_alpha must be in \(0, 1\), got nan$"], id="alpha-nan"
    ),
    pytest.param(
        {"min_requests": True}, [r"^min_requests must be a non-negative integer, got True$"], id="min-requests-boolean"
    ),
    pytest.param({"retention_seconds": True}, [r"^retention_seconds must be .*got True$"], id="retention-boolean"),
    pytest.param(
        {"retention_seconds": 10**30},
        [r"^retention_seconds must be .*at most 366 days.*got 10{30}$"],
        id="retention-huge",
    ),
    pytest.param(
        {"approval_timeout_seconds": float("nan")}, [r"^approval_timeout_seconds must be .*got nan$"], id="timeout-nan"
    ),
    pytest.param(
        {"poll_interval_seconds": float("inf")}, [r"^poll_interval_seconds must be .*got inf$"], id="poll-infinity"
    ),
    pytest.param(
        {"metrics_period_seconds": 7},
        [r"^metrics_period_seconds must be 1, 5, 10, 30 or a multiple of 60 \(CloudWatch\), got 7$"],
        id="period-7",
    ),
    pytest.param(
        {"metrics_period_seconds": 7.5}, [r"^metrics_period_seconds must be .*got 7.5$"], id="period-fraction"
    ),
    pytest.param(
        {"metrics_lag_seconds": -1}, [r"^metrics_lag_seconds must be a non-negative number.*got -1$"], id="lag-negative"
    ),
    pytest.param(
        {"prewarm_invocations": 10**9}, [r"^prewarm_invocations must be .*got 1000000000$"], id="prewarm-huge"
    ),
    pytest.param(
        {"post_promotion_policy": "maybe"},
        [r"^post_promotion_policy must be one of \['rollback', 'notify', 'off'\], got 'maybe'$"],
        id="post-promotion-maybe",
    ),
    pytest.param(
        {"approval_mode": "yes"},
        [r"^approval_mode must be one of \['required', 'auto'\], got 'yes'$"],
        id="approval-mode-yes",
    ),
    pytest.param(
        {"steps": _steps(10, 50)},
        [r"^steps: the last step must be 100 \(full promotion\), got \[10, 50\]$"],
        id="steps-not-ending-at-100",
    ),
    pytest.param(
        {"steps": _steps(50, 10, 100)},
        [r"^steps: weights must strictly increase, got \[50, 10, 100\]$"],
        id="steps-not-increasing",
    ),
    pytest.param(
        {"steps": _steps(10, 10, 100)},
        [r"^steps: weights must strictly increase, got \[10, 10, 100\]$"],
        id="steps-repeated",
    ),
    pytest.param(
        {"steps": [{"weight": 10, "soak_seconds": -1}, {"weight": 100}]},
        [r"^steps: soak_seconds must be .*got -1$"],
        id="steps-negative-soak",
    ),
    pytest.param(
        {"steps": _steps(10, 100, soak=True)}, [r"^steps: soak_seconds must be .*got True$"], id="steps-soak-boolean"
    ),
    pytest.param(
        {"steps": _steps(10, 100, soak=1e308)},
        [r"^steps: soak_seconds must be .*at most 366 days.*got 1e\+308$"],
        id="steps-soak-huge",
    ),
    pytest.param({"steps": []}, [r"^steps: at least one step is required$"], id="steps-empty"),
    pytest.param(
        {"steps": {"weight": 10}}, [r"^steps must be a list of steps, got \{'weight': 10\}$"], id="steps-not-a-list"
    ),
    pytest.param(
        {"functions": "lego-api-moc"},
        [r"^functions must be a list of functions, got 'lego-api-moc'$"],
        id="functions-not-a-list",
    ),
    pytest.param(
        {"functions": [{"name": "lego-api-moc"}, {"name": "lego-api-moc"}]},
        [r"^functions: duplicate names in \['lego-api-moc', 'lego-api-moc'\]$"],
        id="duplicate-functions",
    ),
    pytest.param(
        {"functions": [{"name": "lego-api-moc\n"}]},
        [r"^functions: invalid Lambda function name 'lego-api-moc\\n'$"],
        id="function-name-newline",
    ),
    pytest.param(
        {"functions": [{"name": 'lego-api-moc"; rm -rf /'}]},
        [r"^functions: invalid Lambda function name 'lego-api-moc\"; rm -rf /'$"],
        id="function-name-injection",
    ),
    pytest.param(
        {"functions": [{"name": "lego-api-mõc"}]},
        [r"^functions: invalid Lambda function name 'lego-api-mõc'$"],
        id="function-name-unicode",
    ),
    pytest.param(
        {"functions": [{"name": 42}]}, [r"^functions: invalid Lambda function name 42$"], id="function-name-number"
    ),
    pytest.param(
        {"functions": [{"name": TEN_MB}]},
        [r"^functions: invalid Lambda function name 'xxxx.*… \(10485760 characters\)$"],
        id="function-name-10MB",
    ),
    pytest.param(
        {"functions": [{"zip_file": "v2.zip"}]}, [r"^functions\[0\]: name is required$"], id="function-without-name"
    ),
    pytest.param(
        {"functions": [{"name": "lego-api-moc", "zip_file": "v2.zip", "s3_bucket": "artifacts", "s3_key": "v2.zip"}]},
        [
            r"^functions.lego-api-moc: give exactly one of zip_file, s3_bucket\+s3_key, image_uri, version "
            r"\(got \['zip_file', 's3_key'\]\)$"
        ],
        id="function-zip-and-s3",
    ),
    pytest.param(
        {"release": {"zip_file": "v2.zip", "s3_bucket": "artifacts", "s3_key": "v2.zip"}},
        [r"^release: give exactly one source, .*\(got \['s3_bucket', 's3_key', 'zip_file'\]\)$"],
        id="release-zip-and-s3",
    ),
    pytest.param(
        {"release": {"label": "1.4.2\nrm -rf /", "zip_file": "v2.zip"}},
        [r"^release.label must be .*got '1.4.2\\nrm -rf /'$"],
        id="release-label-newline",
    ),
    pytest.param(
        {"release": {"zip_file": TEN_MB}},
        [r"^release.zip_file must be .*\(10485760 characters\)$"],
        id="release-path-10MB",
    ),
    pytest.param({"service": TEN_MB}, [r"^service must be .*\(10485760 characters\)$"], id="service-10MB"),
    pytest.param({"service": "lego api\n"}, [r"^service must be .*got 'lego api\\n'$"], id="service-newline"),
    pytest.param({"service": DROP}, [r"^service is required$"], id="service-missing"),
    pytest.param(
        {"record_name": "api.example.com"},
        [r"^record_name 'api.example.com' is not in hosted_zone 'lego-mocs.com'$"],
        id="record-outside-zone",
    ),
    pytest.param(
        {"record_name": "api.lego-mocs.com; DROP TABLE"},
        [r"^record_name must be a DNS name .*got 'api.lego-mocs.com; DROP TABLE'$"],
        id="record-name-injection",
    ),
    pytest.param(
        {"hosted_zone": "lego mocs.com"},
        [r"^hosted_zone must be a DNS name or a hosted zone id .*got 'lego mocs.com'$"],
        id="zone-name-space",
    ),
    pytest.param({"record_type": "TXT"}, [r"^record_type must be A, AAAA or CNAME, got 'TXT'$"], id="record-type-txt"),
    pytest.param(
        {"alarms": "lego-api-gateway-5xx-errors"},
        [r"^alarms must be a list of alarm names, got 'lego-api-gateway-5xx-errors'$"],
        id="alarms-not-a-list",
    ),
    pytest.param(
        {"alarms": ["lego-api-moc-errors", ""]}, [r"^alarms: alarm names must be .*got ''$"], id="alarm-name-empty"
    ),
    pytest.param(
        {"slots": _slots(blue={"alias": "production-blue\n"})},
        [r"^slots.blue: invalid Lambda alias name 'production-blue\\n'$"],
        id="alias-newline",
    ),
    pytest.param(
        {"slots": _slots(green={"alias": "production-grün"})},
        [r"^slots.green: invalid Lambda alias name 'production-grün'$"],
        id="alias-unicode",
    ),
    pytest.param(
        {"slots": _slots(green={"alias": "production-blue"})},
        [r"^slots: blue and green need different aliases, got \['production-blue'\]$"],
        id="aliases-equal",
    ),
    pytest.param(
        {"slots": _slots(green={"set_identifier": "x" * 200})},
        [r"^slots.green: set_identifier must be .*\(200 characters\)$"],
        id="set-identifier-too-long",
    ),
    pytest.param(
        {"slots": _slots(blue={"health_url": "file:///etc/passwd"})},
        [r"^slots.blue.health_url must be an http:// or https:// URL, got 'file:///etc/passwd'$"],
        id="health-url-file",
    ),
    pytest.param(
        {"slots": lambda c: {"blue": "production-blue", "green": c["slots"]["green"]}},
        [r"^slots.blue must be a mapping, got 'production-blue'$"],
        id="slot-not-a-mapping",
    ),
    pytest.param(
        {"slots": lambda c: {"blue": c["slots"]["blue"]}},
        [r"^slots must have exactly the keys \['blue', 'green'\], got \['blue'\]$"],
        id="slot-missing",
    ),
    pytest.param(
        {"health": {"consecutive_successes": "3"}},
        [r"^health.consecutive_successes must be .*got '3'$"],
        id="health-successes-as-text",
    ),
    pytest.param(
        {"health": {"request_interval": 20}},
        [r"^health.request_interval must be 10 or 30 \(Route53\), got 20$"],
        id="health-interval-20",
    ),
    pytest.param({"health": {"port": 0}}, [r"^health.port must be .*got 0$"], id="health-port-0"),
    pytest.param(
        {"migrations": {"conn_id": "lego_db", "folder": "dags/migrations", "command": "make migrate"}},
        [r"^migrations: give exactly one of folder or command$"],
        id="migrations-folder-and-command",
    ),
    pytest.param(
        {"migrations": {"folder": "dags/migrations"}},
        [r"^migrations: conn_id is required$"],
        id="migrations-without-connection",
    ),
    pytest.param(
        {"migrations": {"conn_id": "lego_db", "folder": "dags/migrations", "statement_timeout_seconds": float("nan")}},
        [r"^migrations.statement_timeout_seconds must be .*got nan$"],
        id="migrations-timeout-nan",
    ),
    pytest.param(
        {"error_rate_treshold_pct": 3},
        [r"^unknown keys \['error_rate_treshold_pct'\]; known keys are "],
        id="key-misspelt",
    ),
    pytest.param(
        {"error_rate_threshold_pct": -1, "approval_mode": "yes", "steps": _steps(50, 10, 100)},
        [
            r"^error_rate_threshold_pct must be",
            r"^approval_mode must be one of",
            r"^steps: weights must strictly increase",
        ],
        id="three-problems-three-lines",
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), PARSE_CASES)
def test_refused_when_the_dag_file_is_parsed(env, unchanged, overrides, expected):
    base = service_config()
    config = with_overrides(base, {k: v(base) if callable(v) else v for k, v in overrides.items()})
    with pytest.raises(SpecError) as refused:
        deployment_dag("chaos_bad_config", config)
    message = str(refused.value)
    assert message.splitlines()[0] == "invalid deployment spec:"
    assert_clear(message, refused.value.problems, expected)
    assert problem_lines(message) == refused.value.problems


# -- plan: accepted when triggered, refused by the plan task against moto ---------------------------
@dataclass(frozen=True)
class PlanCase:
    """Input the trigger form accepts: a run conf, a service config (overrides of the repo's), and an
    AWS world changed before the run."""

    expected: tuple[str, ...]
    conf: Mapping[str, Any] | Callable[[Env], Mapping[str, Any]] = ()  # type: ignore[assignment]
    config: Mapping[str, Any] | Callable[[World], Mapping[str, Any]] | None = None
    setup: Callable[[World], Any] | None = None


def _v2(env: Env) -> str:
    return str(env.releases / "v2.zip")


PLAN_CASES = [
    pytest.param(
        PlanCase(
            (r"^metrics_period_seconds must be 1, 5, 10, 30 or a multiple of 60 \(CloudWatch\), got 7$",),
            conf={"metrics_period_seconds": 7},
        ),
        id="period-7",
    ),
    pytest.param(
        PlanCase((r"^error_rate_threshold_pct must be .*got nan$",), conf={"error_rate_threshold_pct": float("nan")}),
        id="threshold-nan",
    ),
    pytest.param(
        PlanCase((r"^comparison_margin must be .*got nan$",), conf={"comparison_margin": float("nan")}), id="margin-nan"
    ),
    pytest.param(
        PlanCase((r"^poll_interval_seconds must be .*got nan$",), conf={"poll_interval_seconds": float("nan")}),
        id="poll-nan",
    ),
    pytest.param(
        PlanCase((r"^metrics_lag_seconds must be .*got nan$",), conf={"metrics_lag_seconds": float("nan")}),
        id="lag-nan",
    ),
    pytest.param(
        PlanCase(
            (r"^steps: soak_seconds must be .*got nan$",),
            conf={
                "steps": [
                    {"weight": 10, "soak_seconds": float("nan")},
                    {"weight": 50, "soak_seconds": 600},
                    {"weight": 100},
                ]
            },
        ),
        id="soak-nan",
    ),
    pytest.param(
        PlanCase(
            (r"^steps: the last step must be 100 \(full promotion\), got \[10, 50\]$",), conf={"steps": _steps(10, 50)}
        ),
        id="steps-not-ending-at-100",
    ),
    pytest.param(
        PlanCase(
            (r"^steps: weights must strictly increase, got \[50, 10, 100\]$",), conf={"steps": _steps(50, 10, 100)}
        ),
        id="steps-not-increasing",
    ),
    pytest.param(
        PlanCase(
            (
                r"^steps: this DAG's traffic stages are 10 → 50 → 100 %; a run may change each step's "
                r"soak_seconds, not its weights \(got 5 → 25 → 100\)$",
            ),
            conf={"steps": _steps(5, 25, 100)},
        ),
        id="steps-not-the-dags-stages",
    ),
    pytest.param(
        PlanCase(
            (r"^functions: duplicate names in \['lego-api-moc', 'lego-api-moc'\]$",),
            conf={"functions": [{"name": "lego-api-moc"}, {"name": "lego-api-moc"}]},
        ),
        id="duplicate-functions",
    ),
    pytest.param(
        PlanCase(
            (r"^release: give exactly one source, .*\(got \['s3_bucket', 's3_key', 'zip_file'\]\)$",),
            conf=lambda env: {"release": {"zip_file": _v2(env), "s3_bucket": "artifacts", "s3_key": "lego-api/v2.zip"}},
        ),
        id="release-zip-and-s3",
    ),
    pytest.param(
        PlanCase(
            (r"^release.zip_dir: unknown placeholder\(s\) \['fn'\] in '/build/\{fn\}'",),
            conf={"release": {"zip_dir": "/build/{fn}"}},
        ),
        id="release-unknown-placeholder",
    ),
    pytest.param(
        PlanCase(
            (r"^release.label must be .*\(10485760 characters\)$",),
            conf=lambda env: {"release": {"label": TEN_MB, "zip_file": _v2(env)}},
        ),
        id="release-label-10MB",
    ),
    pytest.param(
        PlanCase(
            (r"^release.s3_key must be .*\(10485760 characters\)$",),
            conf={"release": {"s3_bucket": "artifacts", "s3_key": TEN_MB}},
        ),
        id="release-key-10MB",
    ),
    pytest.param(
        PlanCase(
            (r"Version must be a published version number like '7', got '-1'$",), conf={"release": {"version": "-1"}}
        ),
        id="release-version-negative",
    ),
    pytest.param(
        PlanCase(
            (r"Version '99' of 'lego-api-moc' not found; existing versions: \['1'\]$",),
            conf={"release": {"version": 99}},
        ),
        id="release-version-missing",
    ),
    pytest.param(
        PlanCase(
            (r"lego-api-moc: zip_file '/releases/1.4.2/lego-api-moc.zip' does not exist or is not a file$",),
            conf={"release": {"zip_dir": "/releases/1.4.2"}},
        ),
        id="release-zip-missing",
    ),
    pytest.param(
        PlanCase(
            (
                r"^run param 'error_rate_treshold_pct' is not one of this DAG's params "
                r"\(did you mean 'error_rate_threshold_pct'\?\)$",
            ),
            conf={"error_rate_treshold_pct": 1},
        ),
        id="param-misspelt",
    ),
    pytest.param(
        PlanCase(
            (r"No weighted A record sets named 'www.lego-mocs.com' in zone",),
            config={"record_name": "www.lego-mocs.com"},
        ),
        id="record-not-in-zone",
    ),
    pytest.param(
        PlanCase((r"No weighted AAAA record sets named 'api.lego-mocs.com' in zone",), config={"record_type": "AAAA"}),
        id="record-type-mismatch",
    ),
    pytest.param(
        PlanCase(
            (
                r"No weighted A record sets named 'simple.lego-mocs.com' in zone \w+ "
                r"\(found non-weighted sets \['<simple record>'\]\)",
            ),
            config={"record_name": "simple.lego-mocs.com"},
            setup=lambda w: w.add_simple_record("simple.lego-mocs.com"),
        ),
        id="record-not-weighted",
    ),
    pytest.param(
        PlanCase(
            (r"No hosted zone named 'lego-bricks.com'; existing zones: \['lego-mocs.com. \(\w+\)'\]$",),
            config={"hosted_zone": "lego-bricks.com", "record_name": "api.lego-bricks.com"},
        ),
        id="zone-does-not-exist",
    ),
    pytest.param(
        PlanCase(
            (r"Hosted zone 'Z0000000000NOPE' not found; existing zones: ",), config={"hosted_zone": "Z0000000000NOPE"}
        ),
        id="zone-id-does-not-exist",
    ),
    pytest.param(
        PlanCase(
            (r"record 'api.lego-mocs.com' is not in hosted zone \w+ \(lego-bricks.com.\)",),
            config=lambda w: {"hosted_zone": w.other_zone_id},
            setup=lambda w: w.add_zone("lego-bricks.com", "api.lego-bricks.com"),
        ),
        id="zone-id-of-another-record",
    ),
    pytest.param(
        PlanCase(
            (r"Weighted set\(s\) \['teal'\] not found for 'api.lego-mocs.com'; existing sets: \['blue', 'green'\]$",),
            config={"slots": _slots(green={"set_identifier": "teal"})},
        ),
        id="set-identifier-not-in-record",
    ),
    pytest.param(
        PlanCase(
            (r"Lambda function 'lego-api-checkout' not found in us-east-1",),
            config={"functions": [{"name": "lego-api-moc"}, {"name": "lego-api-checkout"}]},
        ),
        id="function-not-in-lambda",
    ),
    pytest.param(
        PlanCase(
            (r"slot blue takes the traffic but \['lego-api-gallery'\] have no alias 'production-blue'",),
            setup=lambda w: w.lam.delete_alias(FunctionName="lego-api-gallery", Name="production-blue"),
        ),
        id="live-alias-missing",
    ),
    pytest.param(
        PlanCase((r"lego-api-5xxx",), config={"alarms": ["lego-api-moc-errors", "lego-api-5xxx"]}),
        id="alarm-does-not-exist",
    ),
    pytest.param(
        PlanCase((r"split blue 0 / green 0: no slot is live",), setup=lambda w: w.set_weights(0, 0)), id="no-slot-live"
    ),
    pytest.param(
        PlanCase(
            (r"split blue 50 / green 50: both slots take traffic and no deployment owns it",),
            setup=lambda w: w.set_weights(50, 50),
        ),
        id="both-slots-live",
    ),
    pytest.param(
        PlanCase(
            (r"^migrations: migrations folder '/nonexistent/migrations' does not exist or is not a directory$",),
            config={"migrations": {"conn_id": "lego_db", "folder": "/nonexistent/migrations"}},
        ),
        id="migrations-folder-missing",
    ),
    pytest.param(
        PlanCase(
            (r"^migrations: bad migration file name 'V2_add_color.sql' in ",),
            config={"migrations": {"conn_id": "lego_db", "folder": str(MIGRATION_FIXTURES / "bad_name")}},
        ),
        id="migration-file-misnamed",
    ),
    pytest.param(
        PlanCase(
            (r"^migrations: duplicate migration version 1: ",),
            config={"migrations": {"conn_id": "lego_db", "folder": str(MIGRATION_FIXTURES / "duplicate")}},
        ),
        id="migration-version-twice",
    ),
]


@pytest.mark.parametrize("case", PLAN_CASES)
def test_refused_by_the_plan_before_any_change(env, repo_dag, worlds, world, aws_state, stage_hooks, case):
    if case.setup:
        case.setup(world)
    conf = case.conf(env) if callable(case.conf) else dict(case.conf)
    if case.config is None:
        dag, scheduled = repo_dag
    else:
        base = service_config()
        overrides = case.config(world) if callable(case.config) else case.config
        overrides = {k: v(base) if callable(v) else v for k, v in overrides.items()}
        dag = deployment_dag("chaos_bad_world", with_overrides(base, overrides))
        scheduled = scheduler_view(dag)
    params = trigger(scheduled, conf)  # the trigger form accepts it
    before = aws_state()
    try:
        with pytest.raises(AirflowFailException) as refused:
            run_plan(dag, params, conf, stage_hooks)
    finally:
        after = aws_state()
        worlds.settle(after)
    message = str(refused.value)
    assert message.startswith("deployment refused: "), message[:LONGEST_LINE]
    assert_clear(message, problem_lines(message.removeprefix("deployment refused: ")), case.expected)
    assert after == before, "a refused input changed AWS"
    assert env.tables() == [], "a refused input touched the service database"

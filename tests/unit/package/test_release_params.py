"""The deployment DAG's run params: the trigger form names the functions and the release once.

Checked on the DAG as the scheduler holds it (serialized and read back), through the same merge and
validation Airflow runs when a run is triggered, then through the plan task's rendered spec.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization

from bluegreen_provider.spec import load_spec

REPO = Path(__file__).resolve().parents[3]
FUNCTIONS = ("lego-api-moc", "lego-api-gallery", "lego-api-wishlist", "lego-api-profile")
NAMES_ONLY = [{"name": fn} for fn in FUNCTIONS]


@pytest.fixture
def dag(monkeypatch, tmp_path):
    """The repo's deployment DAG; its AWS connection is unreachable, so any AWS call would fail loudly."""
    monkeypatch.setenv("BLUEGREEN_RELEASES_DIR", str(tmp_path / "releases"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps({"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"}}),
    )
    return runpy.run_path(str(REPO / "dags" / "blue_green_deploy.py"))["deploy"]


def triggered(dag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    """The params of a run triggered with ``conf``, validated as Airflow does when creating the run."""
    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    return scheduler_dag.params.deep_merge(conf).validate()


def planned_spec(dag: Any, params: dict[str, Any]) -> Any:
    """The spec the plan task receives once its template fields are rendered with the run's params."""
    plan = dag.task_dict["plan"]
    plan.render_template_fields({"params": params})
    return plan


def test_the_trigger_form_shows_function_names_and_the_release_once(dag, tmp_path):
    params = triggered(dag, {})
    assert params["functions"] == NAMES_ONLY
    assert params["release"] == {"zip_file": str(tmp_path / "releases" / "v2.zip")}
    spec = load_spec(planned_spec(dag, params).spec)
    assert {f.name: f.zip_file for f in spec.functions} == {
        fn: str(tmp_path / "releases" / "v2.zip") for fn in FUNCTIONS
    }


def test_names_and_a_release_resolve_to_explicit_sources_in_the_plan(dag):
    conf = {
        "functions": [*NAMES_ONLY[:3], {"name": "lego-api-profile", "version": "12"}],
        "release": {"label": "1.4.2", "s3_bucket": "artifacts", "s3_prefix": "lego-api/1.4.2/"},
    }
    spec = load_spec(planned_spec(dag, triggered(dag, conf)).spec)
    assert [(f.name, f.s3_bucket, f.s3_key, f.version) for f in spec.functions] == [
        ("lego-api-moc", "artifacts", "lego-api/1.4.2/lego-api-moc.zip", None),
        ("lego-api-gallery", "artifacts", "lego-api/1.4.2/lego-api-gallery.zip", None),
        ("lego-api-wishlist", "artifacts", "lego-api/1.4.2/lego-api-wishlist.zip", None),
        ("lego-api-profile", None, None, "12"),
    ]
    assert spec.release.label == "1.4.2"


def test_today_s_full_function_objects_still_validate(dag):
    full = [
        {"name": fn, "zip_file": None, "s3_bucket": "b", "s3_key": f"k/{fn}.zip", "image_uri": None, "version": None}
        for fn in FUNCTIONS
    ]
    spec = load_spec(planned_spec(dag, triggered(dag, {"functions": full, "release": None})).spec)
    assert [(f.s3_bucket, f.s3_key) for f in spec.functions] == [("b", f"k/{fn}.zip") for fn in FUNCTIONS]
    assert spec.release is None


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        (
            {"release": {"s3_bucket": "artifacts", "s3_prefx": "1.4.2/"}},
            r"Invalid input for param release: Additional properties are not allowed \('s3_prefx' was unexpected\)",
        ),
        ({"release": {"s3_prefix": "1.4.2/"}}, r"Invalid input for param release: 's3_bucket' is a dependency of"),
        ({"release": {"image_tag": "1.4.2"}}, r"'image_repository' is a dependency of 'image_tag'"),
        ({"release": {"zip_dir": ""}}, r"Invalid input for param release: '' should be non-empty"),
        ({"release": "1.4.2"}, r"Invalid input for param release: '1.4.2' is not of type 'object', 'null'"),
        ({"functions": [{"name": "lego-api-moc", "zip": "a.zip"}]}, r"Invalid input for param functions"),
        ({"functions": [{"zip_file": "a.zip"}]}, r"Invalid input for param functions: 'name' is a required property"),
    ],
)
def test_a_bad_release_or_function_is_refused_when_the_run_is_triggered(dag, conf, message):
    with pytest.raises(ParamValidationError, match=message):
        triggered(dag, conf)


def test_a_release_the_schema_accepts_but_the_spec_refuses_stops_the_plan_before_any_aws_call(dag):
    conf = {
        "functions": NAMES_ONLY,
        "release": {"zip_dir": "/build/{fn}", "version": "3"},
        "steps": [{"weight": 50}, {"weight": 10}, {"weight": 100}],
    }
    plan = planned_spec(dag, triggered(dag, conf))
    with pytest.raises(AirflowFailException) as err:
        plan.execute({})  # the unreachable endpoint would fail differently if AWS were asked
    message = str(err.value)
    assert message.startswith("deployment refused: invalid deployment spec:"), message
    assert "release.zip_dir: unknown placeholder(s) ['fn'] in '/build/{fn}'" in message
    assert "release: give exactly one source" in message and "(got ['version', 'zip_dir'])" in message
    assert "steps: weights must strictly increase" in message
    assert "got none" not in message

"""A deployment triggered the simple way: functions by name, the release named once as a zip_dir."""

from __future__ import annotations

import shutil

import pytest
from airflow.sdk.serde import deserialize

from .conftest import deployment_state

pytestmark = pytest.mark.e2e

# Different code per function, so the test sees that each one got <zip_dir>/<its name>.zip.
RELEASE_OF = {"lego-api-moc": "v2", "lego-api-gallery": "v1", "lego-api-wishlist": "v2", "lego-api-profile": "v1"}


def test_names_only_and_a_zip_dir_release_deploys_each_function_its_own_zip(deploy, sandbox, tmp_path):
    zip_dir = tmp_path / "lego-api-1.4.2"
    zip_dir.mkdir()
    for fn, release in RELEASE_OF.items():
        shutil.copyfile(sandbox.state_dir / "releases" / f"{release}.zip", zip_dir / f"{fn}.zip")

    result = deploy(
        functions=[{"name": fn} for fn in RELEASE_OF],
        release_param={"label": "1.4.2", "zip_dir": str(zip_dir)},
    )

    assert result.state == "success", result.states
    lam = sandbox.clients()("lambda")
    for fn, release in RELEASE_OF.items():
        green = lam.get_function(FunctionName=fn, Qualifier="production-green")["Configuration"]
        assert green["CodeSha256"] == sandbox.release_sha256(release), fn
    published = lam.get_function(FunctionName="lego-api-moc", Qualifier="production-green")["Configuration"]
    assert "release 1.4.2" in published["Description"], published["Description"]
    # Downstream tasks read explicit per-function sources from the plan; the release label rides along.
    spec = deserialize(result.xcom("plan"))["spec"]  # as a task pulls it (tuples are stored tagged)
    assert {f["name"]: f["zip_file"] for f in spec["functions"]} == {
        fn: str(zip_dir / f"{fn}.zip") for fn in RELEASE_OF
    }
    assert spec["release"] == {"label": "1.4.2", "zip_dir": str(zip_dir)}
    state = deployment_state(sandbox)
    assert state.split == {"blue": 0, "green": 100} == sandbox.weights()
    assert state.versions["green"] == {
        fn: lam.get_alias(FunctionName=fn, Name="production-green")["FunctionVersion"] for fn in RELEASE_OF
    }

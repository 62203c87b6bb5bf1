"""A deployment triggered the simple way: functions by name, the release named once as a zip_dir."""

from __future__ import annotations

import shutil

import pytest
from airflow.sdk.serde import deserialize

from .aws_state import (
    STATE_CHANGES,
    assert_changed_only,
    aws_state_tree,
    health_check_paths,
    released_paths,
    sandbox_aws_state,
    settled_aws_state,
    weighted_set,
    weighted_sets,
)
from .conftest import deployment_state

pytestmark = pytest.mark.e2e

# Different code per function, so the test sees that each one got <zip_dir>/<its name>.zip.
RELEASE_OF = {"lego-api-moc": "v2", "lego-api-gallery": "v1", "lego-api-wishlist": "v2", "lego-api-profile": "v1"}


def test_names_only_and_a_zip_dir_release_deploys_each_function_its_own_zip(deploy, sandbox, tmp_path):
    zip_dir = tmp_path / "lego-api-1.4.2"
    zip_dir.mkdir()
    for fn, release in RELEASE_OF.items():
        shutil.copyfile(sandbox.state_dir / "releases" / f"{release}.zip", zip_dir / f"{fn}.zip")

    before = settled_aws_state(sandbox)
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
    assert (state.phase, state.live, state.retained) == ("retired", "green", None), state
    assert state.split == {"blue": 0, "green": 100} == sandbox.weights()
    assert state.versions["green"] == {
        fn: lam.get_alias(FunctionName=fn, Name="production-green")["FunctionVersion"] for fn in RELEASE_OF
    }
    after = sandbox_aws_state(sandbox)
    diff = assert_changed_only(
        before,
        after,
        *STATE_CHANGES,
        weighted_set("blue", "Weight"),
        weighted_set("green", "Weight"),
        *health_check_paths(state),
        *released_paths(after, "production-green"),
        why="the release changed AWS beyond the state record, the split and green's aliases",
    )
    # A function whose zip is the code green already serves (v1, version 1) keeps its version and its
    # code: only the alias's description names this run. The others get one new version each; blue
    # keeps version 1 everywhere.
    for fn, release in RELEASE_OF.items():
        versions = sorted((v for v in aws_state_tree(after)["lambda"][fn]["versions"] if v.isdigit()), key=int)
        changed = diff.matching(f"lambda/{fn}/*").paths()
        if release == "v2":
            assert versions == ["1", "2"], (fn, versions)
            assert {f"lambda/{fn}/versions/2", f"lambda/{fn}/aliases/production-green/FunctionVersion"} <= changed
        else:
            assert versions == ["1"], (fn, versions)
            alias = f"lambda/{fn}/aliases/production-green"
            assert all(p.startswith(f"{alias}/") for p in changed), (fn, diff.matching(f"lambda/{fn}/*"))
            assert f"{alias}/FunctionVersion" not in changed, (fn, diff.matching(f"lambda/{fn}/*"))
        blue = lam.get_alias(FunctionName=fn, Name="production-blue")["FunctionVersion"]
        assert blue == state.versions["blue"][fn] == "1", fn
    assert not [s for s, r in weighted_sets(after).items() if "HealthCheckId" in r], weighted_sets(after)

"""The release named once for every function: each form resolves, a function's own source wins, and
every problem is listed before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from bluegreen_provider.spec import DeploymentSpec, SpecError

FUNCTIONS = ("lego-api-moc", "lego-api-gallery")
ONE_SOURCE = (
    "release: give exactly one source, one of version, zip_file, zip_dir, s3_bucket+s3_key, s3_bucket+s3_prefix, "
    "image_uri, image_repository+image_tag"
)


def spec(release: Any = None, functions: list[dict[str, Any]] | None = None, **extra: Any) -> DeploymentSpec:
    raw: dict[str, Any] = {
        "service": "lego-api",
        "hosted_zone": "lego-mocs.com",
        "record_name": "api.lego-mocs.com",
        "functions": functions if functions is not None else [{"name": fn} for fn in FUNCTIONS],
        **extra,
    }
    if release is not None:
        raw["release"] = release
    return DeploymentSpec.from_dict(raw)


def sources(s: DeploymentSpec) -> dict[str, dict[str, str]]:
    """Each function's explicit source as the resolved spec carries it downstream (to_dict)."""
    return {f["name"]: {k: v for k, v in f.items() if k != "name" and v is not None} for f in s.to_dict()["functions"]}


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ({"version": "7"}, lambda fn: {"version": "7"}),
        ({"version": 7}, lambda fn: {"version": "7"}),
        ({"zip_file": "/build/v2.zip"}, lambda fn: {"zip_file": "/build/v2.zip"}),
        ({"zip_file": "/build/{function}-1.4.2.zip"}, lambda fn: {"zip_file": f"/build/{fn}-1.4.2.zip"}),
        ({"zip_dir": "/build/1.4.2"}, lambda fn: {"zip_file": f"/build/1.4.2/{fn}.zip"}),
        ({"zip_dir": "/build/1.4.2/"}, lambda fn: {"zip_file": f"/build/1.4.2/{fn}.zip"}),
        (
            {"s3_bucket": "artifacts", "s3_prefix": "releases/1.4.2/"},
            lambda fn: {"s3_bucket": "artifacts", "s3_key": f"releases/1.4.2/{fn}.zip"},
        ),
        (
            {"s3_bucket": "artifacts", "s3_key": "releases/{function}/1.4.2.zip"},
            lambda fn: {"s3_bucket": "artifacts", "s3_key": f"releases/{fn}/1.4.2.zip"},
        ),
        (
            {"s3_bucket": "artifacts", "s3_key": "releases/1.4.2/bundle.zip"},
            lambda fn: {"s3_bucket": "artifacts", "s3_key": "releases/1.4.2/bundle.zip"},
        ),
        (
            {"image_repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/lego", "image_tag": "1.4.2"},
            lambda fn: {"image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/lego:1.4.2"},
        ),
        (
            {"image_repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/{function}", "image_tag": "1.4.2"},
            lambda fn: {"image_uri": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{fn}:1.4.2"},
        ),
        ({"image_uri": "repo/lego:{function}-1.4.2"}, lambda fn: {"image_uri": f"repo/lego:{fn}-1.4.2"}),
    ],
)
def test_every_release_form_resolves_to_an_explicit_source_per_function(release, expected):
    resolved = spec({"label": "1.4.2", **release})

    assert sources(resolved) == {fn: expected(fn) for fn in FUNCTIONS}
    # What goes downstream (XCom, the rollback DAG) builds the same spec again.
    assert DeploymentSpec.from_dict(resolved.to_dict()) == resolved
    assert resolved.to_dict()["release"] == {"label": "1.4.2", **release}
    # The trigger form shows what a person typed: names, and the release once.
    assert resolved.release_inputs() == {
        "functions": [{"name": fn} for fn in FUNCTIONS],
        "release": {"label": "1.4.2", **release},
    }


def test_a_function_with_its_own_source_overrides_the_release():
    resolved = spec(
        {"s3_bucket": "artifacts", "s3_prefix": "releases/1.4.2/"},
        functions=[
            {"name": "lego-api-moc"},
            {"name": "lego-api-gallery", "version": "12"},
            {"name": "lego-api-wishlist", "zip_file": "/hotfix/wishlist.zip", "s3_bucket": None, "version": None},
            {"name": "lego-api-profile", "image_uri": "repo/profile:9"},
        ],
    )

    assert sources(resolved) == {
        "lego-api-moc": {"s3_bucket": "artifacts", "s3_key": "releases/1.4.2/lego-api-moc.zip"},
        "lego-api-gallery": {"version": "12"},
        "lego-api-wishlist": {"zip_file": "/hotfix/wishlist.zip"},
        "lego-api-profile": {"image_uri": "repo/profile:9"},
    }
    assert resolved.release_inputs()["functions"] == [
        {"name": "lego-api-moc"},
        {"name": "lego-api-gallery", "version": "12"},
        {"name": "lego-api-wishlist", "zip_file": "/hotfix/wishlist.zip"},
        {"name": "lego-api-profile", "image_uri": "repo/profile:9"},
    ]


def test_a_function_naming_half_a_source_is_refused_not_completed_from_the_release():
    with pytest.raises(SpecError) as err:
        spec(
            {"s3_bucket": "artifacts", "s3_prefix": "releases/1.4.2/"},
            functions=[{"name": "lego-api-moc", "s3_key": "hotfix/moc.zip"}],
        )
    assert err.value.problems == ["functions.lego-api-moc: s3_bucket and s3_key go together"]


def test_today_s_explicit_functions_still_work_without_a_release():
    explicit = [{"name": fn, "zip_file": f"/r/{fn}.zip", "s3_bucket": None, "version": None} for fn in FUNCTIONS]
    resolved = spec(functions=explicit)
    assert sources(resolved) == {fn: {"zip_file": f"/r/{fn}.zip"} for fn in FUNCTIONS}
    assert resolved.release is None and resolved.to_dict()["release"] is None
    assert resolved.release_inputs() == {
        "functions": [{"name": fn, "zip_file": f"/r/{fn}.zip"} for fn in FUNCTIONS],
        "release": None,
    }


def test_a_release_no_function_takes_is_fine():
    resolved = spec({"label": "1.4.2"}, functions=[{"name": "lego-api-moc", "version": "3"}])
    assert sources(resolved) == {"lego-api-moc": {"version": "3"}}
    assert resolved.release.label == "1.4.2"


def test_a_function_without_a_source_and_no_release_gets_the_existing_message():
    with pytest.raises(SpecError) as err:
        spec(functions=[{"name": "lego-api-moc"}, {"name": "lego-api-gallery", "version": "2"}])
    assert err.value.problems == [
        "functions.lego-api-moc: give exactly one of zip_file, s3_bucket+s3_key, image_uri, version (got none); "
        "or give a release with a source for every function"
    ]


def test_a_release_with_only_a_label_gives_no_source():
    with pytest.raises(SpecError, match=r"functions.lego-api-moc: give exactly one of .* \(got none\)"):
        spec({"label": "1.4.2"})


@pytest.mark.parametrize(
    ("release", "problem"),
    [
        ({"s3_bucket": "artifacts"}, ONE_SOURCE + " (got ['s3_bucket'])"),
        ({"s3_prefix": "releases/"}, "(got ['s3_prefix'])"),
        ({"image_tag": "1.4.2"}, "(got ['image_tag'])"),
        ({"zip_dir": "/build", "version": "3"}, "(got ['version', 'zip_dir'])"),
        ({"s3_bucket": "a", "s3_key": "k", "s3_prefix": "p/"}, "(got ['s3_bucket', 's3_key', 's3_prefix'])"),
        ({"zip_file": "/build/{fn}.zip"}, "release.zip_file: unknown placeholder(s) ['fn'] in '/build/{fn}.zip'"),
        ({"s3_bucket": "a", "s3_key": "r/{}.zip"}, "release.s3_key: unknown placeholder(s) ['']"),
        ({"image_uri": "repo:{function!r}"}, "release.image_uri: unknown placeholder(s) ['function']"),
        ({"zip_file": "/build/{function.zip"}, "release.zip_file: '/build/{function.zip' is not a valid template"),
        ({"zip_dir": ["/build"]}, "release.zip_dir must be a string, got ['/build']"),
        ({"version": 7, "label": 1.4}, "release.label must be text, got 1.4"),
        ("1.4.2", "release must be a mapping, got '1.4.2'"),
        ({"s3_bucket": "a", "s3_prefx": "p/"}, "release: unknown keys ['s3_prefx']; known keys are ['image_"),
    ],
)
def test_a_bad_release_is_refused_with_a_clear_problem(release, problem):
    with pytest.raises(SpecError) as err:
        spec(release)
    assert any(problem in p for p in err.value.problems), err.value.problems
    # Functions that would take the release are not reported as lacking a source on top.
    assert not any("got none" in p for p in err.value.problems), err.value.problems


def test_every_problem_is_listed_at_once():
    with pytest.raises(SpecError) as err:
        spec(
            {"s3_bucket": "artifacts", "image_uri": "repo:{tag}"},
            functions=[{"name": "lego-api-moc"}, {"name": "bad name!", "version": "2"}],
            steps=[{"weight": 50}, {"weight": 10}, {"weight": 100}],
        )
    problems = err.value.problems
    assert any(p.startswith("release.image_uri: unknown placeholder(s) ['tag']") for p in problems), problems
    assert any(p.startswith("release: give exactly one source") for p in problems), problems
    assert "functions: invalid Lambda function name 'bad name!'" in problems
    assert "steps: weights must strictly increase, got [50, 10, 100]" in problems
    assert len(problems) == 4, problems

"""LambdaAliasHook against moto (no Docker): publish, reuse, aliases, prune and prewarm."""

from __future__ import annotations

import io
import threading

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from bluegreen_provider.hooks.lambda_alias import (
    AliasConflict,
    AliasTarget,
    FunctionVersion,
    LambdaAliasHook,
    LambdaReleaseError,
)

from .conftest import make_zip

V1 = make_zip("def handler(event, context):\n    return {'v': 1}\n")
V2 = make_zip("def handler(event, context):\n    return {'v': 2}\n")
V3 = make_zip("def handler(event, context):\n    return {'v': 3}\n")


@pytest.fixture
def lam(moto):
    return boto3.client("lambda")


@pytest.fixture
def hook(moto):
    return LambdaAliasHook(aws_conn_id=None)


@pytest.fixture
def fn(lam, lambda_role):
    lam.create_function(
        FunctionName="api", Runtime="python3.12", Role=lambda_role, Handler="app.handler", Code={"ZipFile": V1}
    )
    return "api"


def _state(lam, name="api"):
    """Versions, aliases and $LATEST code: everything a bad call could have touched."""
    return {
        "versions": [
            (v["Version"], v["CodeSha256"], v.get("Description", ""))
            for v in lam.list_versions_by_function(FunctionName=name)["Versions"]
        ],
        "aliases": [
            (a["Name"], a["FunctionVersion"], a.get("Description", ""), a.get("RoutingConfig"))
            for a in lam.list_aliases(FunctionName=name)["Aliases"]
        ],
        "latest": lam.get_function_configuration(FunctionName=name)["CodeSha256"],
    }


def test_zip_sha256_matches_lambda(hook, fn, lam):
    assert hook.zip_sha256(V1) == lam.get_function_configuration(FunctionName=fn)["CodeSha256"]


def test_require_function(hook, fn, lam):
    hook.require_function(fn)
    with pytest.raises(
        LambdaReleaseError, match=r"'apii' not found in us-east-1; similar existing functions: \['api'\]"
    ):
        hook.require_function("apii")


def test_missing_function_without_permission_to_list_others(hook, fn, monkeypatch):
    """The shipped IAM policy withholds ListFunctions: the missing function is still named, the hint says why not."""
    from botocore.client import BaseClient

    real = BaseClient._make_api_call

    def deny_listing(client, operation, params):
        if operation == "ListFunctions":
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, operation)
        return real(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", deny_listing)
    with pytest.raises(
        LambdaReleaseError,
        match=r"'apii' not found in us-east-1; similar existing functions: not listed \(no lambda:ListFunctions",
    ):
        hook.require_function("apii")


def test_publish_code_reuse_and_versions(hook, fn, lam):
    v1 = hook.publish_code(fn, zip_file=V2, description="release 2")
    assert v1 == FunctionVersion(fn, "1", hook.zip_sha256(V2), "release 2")
    assert lam.get_function_configuration(FunctionName=fn, Qualifier="1")["CodeSha256"] == hook.zip_sha256(V2)

    # Same code again (a retried task): the newest version is reused, nothing new is published.
    assert hook.publish_code(fn, zip_file=V2, description="retry") == v1
    v2 = hook.publish_code(fn, zip_file=V3, description="release 3")
    assert v2.version == "2" and v2.code_sha256 == hook.zip_sha256(V3)
    assert [v.version for v in hook.list_versions(fn)] == ["1", "2"]
    assert hook.get_version(fn, "1") == v1


def test_publish_code_from_s3(hook, fn, lam):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="releases")
    s3.put_object(Bucket="releases", Key="api/v2.zip", Body=V2)
    version = hook.publish_code(fn, s3_bucket="releases", s3_key="api/v2.zip", description="from s3")
    assert version.version == "1"
    assert lam.get_function_configuration(FunctionName=fn, Qualifier="1")["Description"] == "from s3"
    # Same object again: $LATEST already matches the newest version, so it is reused.
    assert hook.publish_code(fn, s3_bucket="releases", s3_key="api/v2.zip") == version
    assert len(hook.list_versions(fn)) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one code source .* got none"),
        ({"zip_file": V2, "image_uri": "img:1"}, r"got \['zip_file', 'image_uri'\]"),
        ({"zip_file": V2, "s3_bucket": "b", "s3_key": "k"}, r"got \['zip_file', 's3_bucket/s3_key'\]"),
        ({"s3_bucket": "b"}, "s3_bucket and s3_key go together, got 'b', None"),
        ({"zip_file": V2, "s3_object_version": "3"}, "s3_object_version '3' needs s3_bucket"),
    ],
)
def test_publish_code_bad_sources_change_nothing(hook, fn, lam, kwargs, message):
    before = _state(lam)
    with pytest.raises(LambdaReleaseError, match=message):
        hook.publish_code(fn, **kwargs)
    assert _state(lam) == before


def test_publish_code_missing_function(hook, fn, lam):
    before = _state(lam)
    with pytest.raises(LambdaReleaseError, match="'nope' not found"):
        hook.publish_code("nope", zip_file=V2)
    assert _state(lam) == before


def test_point_alias_create_noop_update(hook, fn, lam):
    v1 = hook.publish_code(fn, zip_file=V2)
    v2 = hook.publish_code(fn, zip_file=V3)
    assert hook.get_alias(fn, "production-green") is None

    created = hook.point_alias(fn, "production-green", v1.version, description="build 41")
    assert created == AliasTarget(fn, "production-green", "1", v1.code_sha256, "build 41")
    assert hook.get_alias(fn, "production-green") == created
    revision = lam.get_alias(FunctionName=fn, Name="production-green")["RevisionId"]

    calls = []
    real_update = hook.conn.update_alias
    hook.conn.update_alias = lambda **kw: calls.append(kw) or real_update(**kw)
    assert hook.point_alias(fn, "production-green", "1", description="build 41") == created
    assert calls == []  # already there: no call

    # A weighted alias (CodeDeploy style) is pointed cleanly, weights removed.
    real_update(
        FunctionName=fn,
        Name="production-green",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.2}},
    )
    moved = hook.point_alias(fn, "production-green", v2.version, description="build 42")
    assert moved.version == "2" and moved.code_sha256 == v2.code_sha256
    alias = lam.get_alias(FunctionName=fn, Name="production-green")
    assert alias["FunctionVersion"] == "2" and alias["Description"] == "build 42"
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    assert revision  # moto keeps RevisionId; nothing else to compare


@pytest.mark.parametrize(
    ("function", "version", "message"),
    [
        ("api", "9", r"Version '9' of 'api' not found; existing versions: \['1'\]"),
        ("api", "$LATEST", r"published version number like '7', got '\$LATEST'"),
        ("api", 1, "got 1"),
        ("nope", "1", "'nope' not found"),
    ],
)
def test_point_alias_bad_input_changes_nothing(hook, fn, lam, function, version, message):
    hook.publish_code(fn, zip_file=V2)
    hook.point_alias(fn, "production-blue", "1")
    before = _state(lam)
    with pytest.raises(LambdaReleaseError, match=message):
        hook.point_alias(function, "production-blue", version)
    assert _state(lam) == before


def test_get_alias_and_version_errors(hook, fn):
    with pytest.raises(LambdaReleaseError, match="'nope' not found"):
        hook.get_alias("nope", "production-green")
    with pytest.raises(LambdaReleaseError, match=r"Version '3' of 'api' not found; existing versions: \[\]"):
        hook.get_version(fn, "3")


def _publish(lam, fn, count):
    """Publish ``count`` versions; each needs new code, or Lambda (and moto) returns the last one."""
    for i in range(count):
        lam.update_function_code(FunctionName=fn, ZipFile=make_zip(f"# build {i}\n"))
        lam.publish_version(FunctionName=fn, Description=f"build {i}")


def test_list_versions_paginated_oldest_first(hook, fn, lam):
    _publish(lam, fn, 12)
    everything = lam.list_versions_by_function(FunctionName=fn)["Versions"]
    assert len(everything) == 13
    # moto ignores MaxItems/Marker here, so serve the real answer in pages of 5, newest first.
    everything.reverse()
    markers = []

    def paged(FunctionName, Marker=None, **_):
        markers.append(Marker)
        start = int(Marker or 0)
        page = {"Versions": everything[start : start + 5]}
        if start + 5 < len(everything):
            page["NextMarker"] = str(start + 5)
        return page

    hook.conn.list_versions_by_function = paged
    versions = hook.list_versions(fn)
    assert [v.version for v in versions] == [str(i) for i in range(1, 13)]
    assert markers == [None, "5", "10"]
    assert versions[0].description == "build 0"


def test_list_aliases(hook, fn, lam):
    _publish(lam, fn, 2)
    hook.point_alias(fn, "production-green", "2", description="new")
    hook.point_alias(fn, "production-blue", "1")
    aliases = hook.list_aliases(fn)
    assert aliases == [
        AliasTarget(fn, "production-blue", "1", hook.get_version(fn, "1").code_sha256, ""),
        AliasTarget(fn, "production-green", "2", hook.get_version(fn, "2").code_sha256, "new"),
    ]
    assert aliases[0].code_sha256 != aliases[1].code_sha256
    with pytest.raises(LambdaReleaseError, match="'nope' not found"):
        hook.list_aliases("nope")


def test_prune_versions(hook, fn, lam):
    _publish(lam, fn, 8)
    hook.point_alias(fn, "production-blue", "2")
    lam.create_alias(
        FunctionName=fn, Name="canary", FunctionVersion="3", RoutingConfig={"AdditionalVersionWeights": {"4": 0.1}}
    )
    deleted = hook.prune_versions(fn, keep_latest=2, protect=["5"])
    assert deleted == ["1", "6"]
    assert [v.version for v in hook.list_versions(fn)] == ["2", "3", "4", "5", "7", "8"]
    assert hook.prune_versions(fn, keep_latest=2, protect=["5"]) == []
    assert hook.prune_versions(fn, keep_latest=0) == ["5", "7", "8"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep_latest": -1}, "keep_latest must be an int >= 0, got -1"),
        ({"keep_latest": True}, "got True"),
        ({"keep_latest": 1, "protect": "5"}, "collection of version strings, got '5'"),
        ({"keep_latest": 1, "protect": ["42"]}, r"\['42'\] of 'api' do not exist; existing: \['1', '2', '3'\]"),
    ],
)
def test_prune_versions_bad_input_deletes_nothing(hook, fn, lam, kwargs, message):
    _publish(lam, fn, 3)
    before = _state(lam)
    with pytest.raises(LambdaReleaseError, match=message):
        hook.prune_versions(fn, **kwargs)
    assert _state(lam) == before


def test_prewarm_invokes_concurrently(hook, fn, lam):
    hook.point_alias(fn, "production-green", hook.publish_code(fn, zip_file=V2).version)
    seen = []
    # The first four invokes only return once four are in flight at the same time.
    in_flight = threading.Barrier(4, timeout=10)
    real_invoke = hook.conn.invoke

    lock = threading.Lock()

    def gated_invoke(**kwargs):
        with lock:
            seen.append((kwargs["Qualifier"], kwargs["Payload"]))
            first_four = len(seen) <= 4
        if first_four:
            in_flight.wait()
        return real_invoke(**kwargs)

    hook.conn.invoke = gated_invoke
    result = hook.prewarm(fn, "production-green", invocations=8, concurrency=4, payload={"warmup": True})
    assert (result.invocations, result.errors) == (8, 0)
    assert result.max_duration_ms > 0
    assert seen == [("production-green", b'{"warmup": true}')] * 8


def test_prewarm_counts_function_errors(hook, fn, monkeypatch):
    calls = []

    def invoke(**kwargs):
        calls.append(kwargs)
        if len(calls) == 5:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate"}}, "Invoke")
        if len(calls) == 4:
            raise ReadTimeoutError(endpoint_url="https://lambda")
        failed = len(calls) % 3 == 0
        return {
            "StatusCode": 200,
            "Payload": io.BytesIO(b'{"errorMessage": "boom"}' if failed else b"{}"),
            **({"FunctionError": "Unhandled"} if failed else {}),
        }

    monkeypatch.setattr(hook.conn, "invoke", invoke)
    result = hook.prewarm(fn, "$LATEST", invocations=6, concurrency=1)
    assert len(calls) == 6
    assert (result.invocations, result.errors) == (6, 4)  # calls 3 and 6 FunctionError, 4 timeout, 5 throttled


@pytest.mark.parametrize(
    ("function", "qualifier", "kwargs", "message"),
    [
        (
            "api",
            "production-green",
            {},
            r"Qualifier 'production-green' of 'api' not found; existing aliases: \['blue'\]",
        ),
        ("nope", "blue", {}, "'nope' not found"),
        ("api", "blue", {"invocations": 0}, "invocations must be an int >= 1, got 0"),
        ("api", "blue", {"concurrency": 0}, "concurrency must be an int >= 1, got 0"),
    ],
)
def test_prewarm_bad_input_invokes_nothing(hook, fn, monkeypatch, function, qualifier, kwargs, message):
    hook.point_alias(fn, "blue", hook.publish_code(fn, zip_file=V2).version)
    calls = []
    monkeypatch.setattr(hook.conn, "invoke", lambda **kw: calls.append(kw))
    with pytest.raises(LambdaReleaseError, match=message):
        hook.prewarm(function, qualifier, **{"invocations": 2, **kwargs})
    assert calls == []


def test_route_alias_is_a_compare_and_swap_on_the_revision(hook, fn, lam):
    v1 = lam.publish_version(FunctionName=fn)["Version"]
    lam.update_function_code(FunctionName=fn, ZipFile=V2)
    v2 = lam.publish_version(FunctionName=fn)["Version"]
    lam.create_alias(FunctionName=fn, Name="production", FunctionVersion=v1)
    read = hook.get_alias_routing(fn, "production")
    routed = hook.route_alias(read, version=v1, weights={v2: 0.1}, description="generation 3")
    assert (routed.version, routed.weights, routed.description) == (v1, {v2: 0.1}, "generation 3")
    assert routed.revision_id != read.revision_id
    with pytest.raises(AliasConflict):
        hook.route_alias(read, version=v2, weights={}, description="stale")
    assert hook.get_alias_routing(fn, "production") == routed
    assert hook.get_alias_routing(fn, "missing") is None


def test_route_alias_refuses_routing_lambda_would_refuse_before_calling_it(hook, fn, lam):
    v1 = lam.publish_version(FunctionName=fn)["Version"]
    lam.create_alias(FunctionName=fn, Name="production", FunctionVersion=v1)
    read = hook.get_alias_routing(fn, "production")
    before = _state(lam)
    for version, weights in (("$LATEST", {}), (v1, {v1: 0.5}), (v1, {"2": 0.1, "3": 0.1}), (v1, {"2": 2.0})):
        with pytest.raises(LambdaReleaseError):
            hook.route_alias(read, version=version, weights=weights, description="x")
    assert _state(lam) == before

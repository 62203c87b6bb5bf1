"""Every hook's client retries with botocore's ``standard`` mode and its service's attempts; a connection's
``config_kwargs`` (or a hook's explicit config) override them key by key."""

from __future__ import annotations

import json

import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from botocore.retries import standard

from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook
from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.retries import (
    CLOUDWATCH_MAX_ATTEMPTS,
    LAMBDA_MAX_ATTEMPTS,
    ROUTE53_MAX_ATTEMPTS,
    retry_config,
)
from bluegreen_provider.hooks.route53 import Route53Hook

from .conftest import REGION

CONN_ID = "bluegreen_retries"
HOOKS = [
    (Route53Hook, ROUTE53_MAX_ATTEMPTS),
    (LambdaAliasHook, LAMBDA_MAX_ATTEMPTS),
    (CloudWatchMetricsHook, CLOUDWATCH_MAX_ATTEMPTS),
]


@pytest.fixture
def connection(aws_env, monkeypatch):
    """Set the Airflow connection ``CONN_ID`` with the given extra ``config_kwargs`` (None: no key)."""

    def make(config_kwargs: dict | None = None) -> str:
        extra: dict = {"region_name": REGION, "endpoint_url": "http://127.0.0.1:9"}
        if config_kwargs is not None:
            extra["config_kwargs"] = config_kwargs
        conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
        return CONN_ID

    return make


@pytest.mark.parametrize(("hook_class", "attempts"), HOOKS)
def test_each_hook_client_uses_standard_retries_with_its_service_attempts(connection, hook_class, attempts) -> None:
    hook = hook_class(aws_conn_id=connection())
    assert hook.conn.meta.config.retries == {"mode": "standard", "total_max_attempts": attempts}


def test_route53_gets_more_attempts_than_the_botocore_default() -> None:
    assert ROUTE53_MAX_ATTEMPTS >= 10 > standard.DEFAULT_MAX_ATTEMPTS


@pytest.mark.parametrize(("hook_class", "attempts"), HOOKS)
def test_connection_config_kwargs_override_the_attempts_and_keep_other_settings(
    connection, hook_class, attempts
) -> None:
    conn_id = connection({"retries": {"total_max_attempts": 3}, "read_timeout": 7})
    config = hook_class(aws_conn_id=conn_id).conn.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert config.read_timeout == 7


@pytest.mark.parametrize(("hook_class", "attempts"), HOOKS)
def test_connection_setting_only_the_mode_keeps_the_service_attempts(connection, hook_class, attempts) -> None:
    conn_id = connection({"retries": {"mode": "adaptive"}})
    assert hook_class(aws_conn_id=conn_id).conn.meta.config.retries == {
        "mode": "adaptive",
        "total_max_attempts": attempts,
    }


def test_connection_max_attempts_means_retries_as_in_botocore(connection) -> None:
    # botocore's Config ``max_attempts`` counts retries after the first attempt.
    conn_id = connection({"retries": {"max_attempts": 4}})
    assert Route53Hook(aws_conn_id=conn_id).conn.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}


def test_connection_settings_without_retries_keep_the_defaults(connection) -> None:
    conn_id = connection({"connect_timeout": 3})
    config = Route53Hook(aws_conn_id=conn_id).conn.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": ROUTE53_MAX_ATTEMPTS}
    assert config.connect_timeout == 3


def test_an_explicit_hook_config_overrides_the_connection(connection) -> None:
    conn_id = connection({"retries": {"total_max_attempts": 3}})
    hook = LambdaAliasHook(aws_conn_id=conn_id, config=Config(retries={"total_max_attempts": 2}))
    assert hook.conn.meta.config.retries == {"mode": "standard", "total_max_attempts": 2}


def test_retry_config_without_explicit_settings() -> None:
    assert retry_config(None, total_max_attempts=6).retries == {"mode": "standard", "total_max_attempts": 6}


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "Throttling"), (400, "PriorRequestNotComplete"), (503, "ServiceUnavailable")],
)
def test_route53_client_makes_every_attempt_on_transient_answers(connection, monkeypatch, status, code) -> None:
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    hook = Route53Hook(aws_conn_id=connection())
    attempts: list[str] = []

    def answer(request, **kwargs) -> AWSResponse:
        attempts.append(request.url)
        body = (
            '<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code><Message>try again</Message></Error>"
            "<RequestId>r</RequestId></ErrorResponse>"
        ).encode()
        return AWSResponse(request.url, status, {"Content-Type": "text/xml"}, _Raw(body))

    hook.conn.meta.events.register("before-send.route53.GetChange", answer)
    with pytest.raises(ClientError) as info:
        hook.get_change_status("C1")
    assert info.value.response["Error"]["Code"] == code
    assert len(attempts) == ROUTE53_MAX_ATTEMPTS


def test_a_client_error_that_is_not_transient_is_not_retried(connection, monkeypatch) -> None:
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    hook = Route53Hook(aws_conn_id=connection())
    attempts: list[str] = []

    def answer(request, **kwargs) -> AWSResponse:
        attempts.append(request.url)
        body = (
            b'<?xml version="1.0"?><ErrorResponse><Error><Type>Sender</Type><Code>InvalidChangeBatch</Code>'
            b"<Message>stale</Message></Error></ErrorResponse>"
        )
        return AWSResponse(request.url, 400, {"Content-Type": "text/xml"}, _Raw(body))

    hook.conn.meta.events.register("before-send.route53.GetChange", answer)
    with pytest.raises(ClientError):
        hook.get_change_status("C1")
    assert len(attempts) == 1


class _Raw:
    """The raw urllib3-like body botocore reads an answer from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *args, **kwargs):
        yield self._body


# -- Lambda writes whose answer is lost after they applied: botocore resends them -----------------


class LoseFirstAnswer:
    """Let moto apply the first request of an operation, then drop its answer (botocore resends it)."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, request, event_name: str, **kwargs):
        from moto.core.models import botocore_stubber

        self.attempts += 1
        if self.attempts == 1:
            applied = botocore_stubber(event_name, request)
            assert applied is not None and applied.status_code < 300
            raise ConnectionClosedError(endpoint_url=request.url)
        return None


@pytest.fixture
def function(moto, lambda_role, monkeypatch) -> str:
    import boto3

    from .conftest import make_zip

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    lam = boto3.client("lambda", region_name=REGION)
    code = {"ZipFile": make_zip("def handler(event, context):\n    return 1\n")}
    lam.create_function(FunctionName="api", Runtime="python3.12", Role=lambda_role, Handler="app.handler", Code=code)
    for _ in range(3):
        lam.update_function_code(FunctionName="api", ZipFile=make_zip(f"def handler(e, c):\n    return {_}\n"))
        lam.publish_version(FunctionName="api")
    return "api"


def test_an_alias_created_while_the_answer_was_lost_is_taken_as_created(function) -> None:
    hook = LambdaAliasHook(aws_conn_id=None)
    lose = LoseFirstAnswer()
    hook.conn.meta.events.register("before-send.lambda.CreateAlias", lose)

    target = hook.point_alias(function, "production-green", "2", description="build 2")

    assert lose.attempts == 2  # the create, then botocore's resend (refused: the alias exists)
    assert (target.version, target.description) == ("2", "build 2")
    alias = hook.conn.get_alias(FunctionName=function, Name="production-green")
    assert (alias["FunctionVersion"], alias["Description"]) == ("2", "build 2")


def test_a_version_pruned_while_the_answer_was_lost_counts_as_pruned(function) -> None:
    hook = LambdaAliasHook(aws_conn_id=None)
    lose = LoseFirstAnswer()
    hook.conn.meta.events.register("before-send.lambda.DeleteFunction", lose)

    deleted = hook.prune_versions(function, keep_latest=1)

    assert deleted == ["1", "2"]
    assert lose.attempts == 3  # version 1 (lost), its resend (not found), version 2
    assert [v.version for v in hook.list_versions(function)] == ["3"]

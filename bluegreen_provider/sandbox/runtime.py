"""Running a release's handler the way Lambda behind API Gateway would, minus the containers.

The point is the status the caller sees: a raised exception is a Lambda error that API Gateway turns
into 502, a malformed result is also 502, otherwise the handler's own statusCode goes through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bluegreen_provider.sandbox.clients import REGION
from bluegreen_provider.sandbox.releases import Release

log = logging.getLogger(__name__)
ACCOUNT_ID = "123456789012"  # moto's default account


@dataclass(frozen=True)
class LambdaContext:
    """The subset of Lambda's context object the demo handlers may read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = 1024

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass(frozen=True)
class Outcome:
    """What one request produced: the HTTP status and whether Lambda counted a function error."""

    status: int
    function_error: bool
    body: str = ""


def invoke(release: Release, *, function: str, version: str, alias: str, path: str, request_id: str) -> Outcome:
    event = {
        "version": "2.0",
        "routeKey": f"GET {path}",
        "rawPath": path,
        "headers": {"host": "api.lego-mocs.com"},
        "requestContext": {"requestId": request_id, "http": {"method": "GET", "path": path}, "stage": alias},
    }
    context = LambdaContext(
        function_name=function,
        function_version=version,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function}:{alias}",
        aws_request_id=request_id,
    )
    try:
        result = release.handler(event, context)
    except Exception as exc:
        log.debug("%s (%s) raised on %s: %s", function, release.name, path, exc)
        return Outcome(502, True, '{"message": "Internal server error"}')
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        return Outcome(502, True, '{"message": "Malformed Lambda proxy response"}')
    return Outcome(result["statusCode"], False, str(result.get("body", "")))

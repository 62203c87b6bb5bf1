"""lego-api release "bad": passes its health check but fails ~30 % of real requests.

It models the regression blue/green exists to contain: the failure is invisible to /health and only
shows in error rates and alarms. Which request fails depends only on its request id, so a run with the
same traffic seed fails the same requests.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

RELEASE = "bad"
ROUTES = {"/api/mocs": "mocs", "/api/gallery": "gallery", "/api/wishlist": "wishlist", "/api/profile": "profile"}
CRASH_PERCENT = 20  # the function raises: a Lambda error, API Gateway answers 502
FAIL_PERCENT = 30  # crashes plus handled failures answered with 500


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def _fate(request_id: str) -> int:
    return int(hashlib.sha256(request_id.encode()).hexdigest()[:8], 16) % 100


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    path = event.get("rawPath", "/")
    if path == "/health":
        return _response(200, {"status": "ok", "release": RELEASE})
    resource = ROUTES.get(path)
    if resource is None:
        return _response(404, {"message": "Not Found"})
    fate = _fate(event["requestContext"]["requestId"])
    if fate < CRASH_PERCENT:
        raise RuntimeError(f"unhandled regression in {resource} serializer")
    if fate < FAIL_PERCENT:
        return _response(500, {"message": "Internal Server Error", "release": RELEASE})
    return _response(200, {"release": RELEASE, "resource": resource, "items": []})

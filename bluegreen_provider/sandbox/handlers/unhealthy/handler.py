"""lego-api release "unhealthy": serves requests but its /health answers 503.

It models a build whose dependency check fails (for example a database it cannot reach), so the
pre-shift health check, not the error-rate analysis, is what must stop the deployment.
"""

from __future__ import annotations

import json
from typing import Any

RELEASE = "unhealthy"
ROUTES = {"/api/mocs": "mocs", "/api/gallery": "gallery", "/api/wishlist": "wishlist", "/api/profile": "profile"}


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    path = event.get("rawPath", "/")
    if path == "/health":
        return _response(503, {"status": "unhealthy", "release": RELEASE, "reason": "database unreachable"})
    resource = ROUTES.get(path)
    if resource is None:
        return _response(404, {"message": "Not Found"})
    return _response(200, {"release": RELEASE, "resource": resource, "items": []})

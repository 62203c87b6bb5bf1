"""lego-api release v2: a healthy new build, the one a normal blue/green deployment promotes."""

from __future__ import annotations

import json
from typing import Any

RELEASE = "v2"
ROUTES = {"/api/mocs": "mocs", "/api/gallery": "gallery", "/api/wishlist": "wishlist", "/api/profile": "profile"}


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    path = event.get("rawPath", "/")
    if path == "/health":
        return _response(200, {"status": "ok", "release": RELEASE})
    resource = ROUTES.get(path)
    if resource is None:
        return _response(404, {"message": "Not Found"})
    # v2 adds pagination metadata; the payload change is what makes it a distinct release.
    return _response(200, {"release": RELEASE, "resource": resource, "items": [], "nextToken": None})

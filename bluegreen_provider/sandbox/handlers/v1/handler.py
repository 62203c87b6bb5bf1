"""lego-api release v1: the baseline build every slot runs when the sandbox starts."""

from __future__ import annotations

import json
from typing import Any

RELEASE = "v1"
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
    return _response(200, {"release": RELEASE, "resource": resource, "items": []})

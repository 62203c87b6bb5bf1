"""The HTTP endpoints: per-slot health runs the deployed release, status and alarm injection."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from bluegreen_provider.sandbox import Sandbox

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, data: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with _opener.open(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_health_reflects_the_release_behind_each_slot(sandbox: Sandbox, deploy) -> None:
    assert _get(f"{sandbox.http_url}/blue/health") == (200, {"status": "ok", "release": "v1"})
    deploy("unhealthy", "green")
    status, body = _get(f"{sandbox.http_url}/green/health")
    assert (status, body["release"]) == (503, "unhealthy")
    assert _get(f"{sandbox.http_url}/blue/health")[0] == 200
    deploy("v2", "green")
    assert _get(f"{sandbox.http_url}/green/health") == (200, {"status": "ok", "release": "v2"})
    assert _get(f"{sandbox.http_url}/purple/health")[0] == 404


def test_status_and_alarm_injection_over_http(sandbox: Sandbox, wait_until) -> None:
    wait_until(lambda: sandbox.stats()["blue"]["requests"] > 0, what="traffic")
    status, body = _get(f"{sandbox.http_url}/status")
    assert status == 200
    assert body["weights"] == {"blue": 100, "green": 0}
    assert body["slots"]["blue"]["requests"] > 0 and body["slots"]["green"]["requests"] == 0
    assert body["releases"]["v1"] == sandbox.release_sha256("v1")

    url = f"{sandbox.http_url}/alarms/lego-api-gallery-errors"
    assert _get(url, json.dumps({"state": "ALARM", "reason": "drill"}).encode())[0] == 200
    assert sandbox.alarm_states()["lego-api-gallery-errors"] == "ALARM"
    assert _get(f"{sandbox.http_url}/status")[1]["forced_alarms"] == {"lego-api-gallery-errors": "ALARM"}
    assert _get(url, json.dumps({"release": True}).encode())[0] == 200
    assert sandbox.alarm_states()["lego-api-gallery-errors"] == "OK"
    assert _get(url, json.dumps({"state": "ON_FIRE"}).encode())[0] == 400
    assert _get(f"{sandbox.http_url}/alarms/no-such-alarm", b"{}")[0] == 404

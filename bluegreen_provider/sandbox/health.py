"""The sandbox's own HTTP endpoints on 127.0.0.1.

``GET /{slot}/health`` stands in for ``https://production-{slot}.execute-api…/health``: it runs the
health path of the release the slot's first function alias points to right now;
``GET /services/{name}/{slot}/health`` does the same for a service added beside the story's. ``GET /status``
reports the profile, traffic (per slot and per second), weights, Route53 changes and health checks;
``POST /alarms/{name}`` forces (``{"state": …, "reason": …}``) or releases (``{"release": true}``) an
alarm; ``POST /checkers/{region}`` (``{"failing": true|false}``) makes one health-checker region fail.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from bluegreen_provider.sandbox.alarms import UnknownAlarmError
from bluegreen_provider.sandbox.serving import ServingThread
from bluegreen_provider.sandbox.world import SLOTS

log = logging.getLogger(__name__)
_MAX_BODY = 64 * 1024


class SandboxControl(Protocol):
    """What the HTTP endpoints need from the sandbox."""

    def status(self) -> dict[str, Any]: ...
    def health(self, slot: str, service: str | None = None) -> tuple[int, str]: ...
    def force_alarm(self, name: str, state: str = "ALARM", reason: str | None = None) -> None: ...
    def release_alarm(self, name: str) -> None: ...
    def fail_checker_region(self, region: str, failing: bool = True) -> None: ...


def _make_handler(control: SandboxControl) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "bluegreen-sandbox"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def do_GET(self) -> None:
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if parts == ["status"]:
                self._json(200, control.status())
            elif len(parts) == 2 and parts[0] in SLOTS and parts[1] == "health":
                status, body = control.health(parts[0])
                self._send(status, body.encode(), "application/json")
            elif len(parts) == 4 and parts[0] == "services" and parts[2] in SLOTS and parts[3] == "health":
                status, body = control.health(parts[2], service=parts[1])
                self._send(status, body.encode(), "application/json")
            else:
                self._json(404, {"message": "Not Found"})

        def do_POST(self) -> None:
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if len(parts) != 2 or parts[0] not in ("alarms", "checkers"):
                self._json(404, {"message": "Not Found"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(min(length, _MAX_BODY)) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                if parts[0] == "checkers":
                    failing = bool(body.get("failing", True))
                    control.fail_checker_region(parts[1], failing)
                    self._json(200, {"region": parts[1], "failing": failing})
                elif body.get("release"):
                    control.release_alarm(parts[1])
                    self._json(200, {"alarm": parts[1], "forced": False})
                else:
                    state = str(body.get("state", "ALARM"))
                    control.force_alarm(parts[1], state, body.get("reason"))
                    self._json(200, {"alarm": parts[1], "forced": True, "state": state})
            except UnknownAlarmError:
                self._json(404, {"message": f"unknown alarm {parts[1]}"})
            except ValueError as exc:
                self._json(400, {"message": str(exc)})
            except RuntimeError as exc:  # no health checkers on this profile
                self._json(409, {"message": str(exc)})

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload, indent=2, sort_keys=True).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class HealthServer:
    """http.server on a thread; binds in ``start()`` so a busy port fails loudly."""

    def __init__(self, control: SandboxControl, host: str = "127.0.0.1", port: int = 0) -> None:
        self._control = control
        self._host = host
        self._port = port
        self._serving = ServingThread("sandbox-http")

    @property
    def url(self) -> str:
        return self._serving.url

    def start(self) -> None:
        self._serving.serve(ThreadingHTTPServer((self._host, self._port), _make_handler(self._control)))

    def stop(self) -> None:
        self._serving.close()

"""moto in server mode on 127.0.0.1, configured to run Lambda without Docker.

moto's ``ThreadedMotoServer`` binds inside its thread, so a port already in use makes ``start()``
wait forever. Binding here, in the caller's thread, turns that into an immediate ``OSError``; the
served application is moto's own.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from bluegreen_provider.sandbox import cloudwatch_rules, health_checkers, lambda_rules, route53_rules, throttling
from bluegreen_provider.sandbox.serving import ServingThread

# moto keeps Lambda state in a Docker-free backend when this is set; the sandbox never invokes Lambda
# through moto (the simulator runs the handler code itself), so Docker is never needed.
LAMBDA_WITHOUT_DOCKER = {"lambda": {"use_docker": False}}


class _QuietHandler(MotoRequestHandler):
    """moto's request handler without one access-log line per API call."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class MotoServer:
    """A moto server thread whose state is reset and configured on start."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._serving = ServingThread("sandbox-moto")
        self._previous_config: dict[str, Any] = {"lambda": {"use_docker": True}}

    @property
    def url(self) -> str:
        return self._serving.url

    def start(self) -> None:
        route53_rules.install()
        cloudwatch_rules.install()
        lambda_rules.install()
        health_checkers.install()
        throttling.install()
        app = DomainDispatcherApplication(create_backend_app)
        self._serving.serve(make_server(self._host, self._port, app, threaded=True, request_handler=_QuietHandler))
        # moto's backends and config are process-global: a previous sandbox in this process must not
        # leak in, and this one must leave the config as it found it for anything else using moto here.
        self._post("/moto-api/reset", None)
        route53_rules.CHANGES.clear()
        self._previous_config = {"lambda": self._get("/moto-api/config")["lambda"]}
        self._post("/moto-api/config", LAMBDA_WITHOUT_DOCKER)

    def stop(self) -> None:
        if self._serving.running:
            try:
                self._post("/moto-api/reset", None)  # frees the metrics and functions it accumulated
                self._post("/moto-api/config", self._previous_config)
            except OSError:
                pass  # the server thread is already gone; nothing left to free
        self._serving.close()

    def _post(self, path: str, body: dict[str, Any] | None) -> None:
        self._call("POST", path, json.dumps(body).encode() if body is not None else b"")

    def _get(self, path: str) -> Any:
        return json.loads(self._call("GET", path, None))

    def _call(self, method: str, path: str, data: bytes | None) -> bytes:
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with _opener.open(request, timeout=10) as response:
            return response.read()


# Loopback only: never route sandbox calls through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

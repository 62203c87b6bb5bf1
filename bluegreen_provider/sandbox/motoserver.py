"""moto in server mode on 127.0.0.1, configured to run Lambda without Docker.

moto's ``ThreadedMotoServer`` binds inside its thread, so a port already in use makes ``start()``
wait forever. Binding here, in the caller's thread, turns that into an immediate ``OSError``; the
served application is moto's own.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

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
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("moto server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._host, self._port, app, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-moto", daemon=True)
        self._thread.start()
        # moto's backends are process-global: a previous sandbox in this process must not leak in.
        self._post("/moto-api/reset", None)
        self._post("/moto-api/config", LAMBDA_WITHOUT_DOCKER)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def _post(self, path: str, body: dict[str, Any] | None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(self.url + path, data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        with _opener.open(request, timeout=10) as response:
            response.read()


# Loopback only: never route sandbox calls through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

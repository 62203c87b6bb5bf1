"""One HTTP server of the sandbox on a daemon thread: the moto server, the fault proxy, the health server.

The server binds when it is handed over (a busy port fails loudly at start, not at the first request)
and stops within a poll of ``shutdown()``.
"""

from __future__ import annotations

import socketserver
import threading

POLL_SECONDS = 0.1  # how soon shutdown() is noticed


class ServingThread:
    """Serve one bound server on a daemon thread named ``name``; ``close()`` stops and frees it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def serve(self, server: socketserver.BaseServer) -> None:
        if isinstance(server, socketserver.ThreadingMixIn):
            server.daemon_threads = True  # a request in flight must not keep the process alive
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), name=self.name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

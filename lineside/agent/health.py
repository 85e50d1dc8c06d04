"""/healthz and /metrics over HTTP on the configured address (loopback by default)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from lineside.agent.liveness import Loop

log = logging.getLogger("lineside.health")
HealthFn = Callable[[], tuple[bool, dict[str, Any]]]


class HealthServer:
    def __init__(self, listen: str, health: HealthFn, metrics: Callable[[], bytes]) -> None:
        host, _, port = listen.rpartition(":")
        self.address = (host or "127.0.0.1", int(port))
        self._health = health
        self._metrics = metrics
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def bind(self) -> None:
        """Listen on the address (raises OSError when it cannot); serve with start()."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/healthz":
                    ok, body = outer._health()
                    self._reply(
                        200 if ok else 503,
                        "application/json",
                        json.dumps(body, default=str).encode(),
                    )
                elif self.path.split("?")[0] == "/metrics":
                    self._reply(200, CONTENT_TYPE_LATEST, outer._metrics())
                else:
                    self._reply(404, "text/plain", b"try /healthz or /metrics\n")

            def _reply(self, code: int, kind: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http " + format, *args)

        self._server = ThreadingHTTPServer(self.address, Handler)
        self._server.daemon_threads = True

    def start(self) -> None:
        if self._server is None:
            self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )
        self._thread.start()

    def loop(self) -> Loop:
        """The serving thread, which must run until stop()."""
        assert self._thread is not None
        return Loop(self._thread, lambda: self._server is None)

    def stop(self) -> None:
        """Stop serving and close the socket (also of a server bound but never started)."""
        server, self._server = self._server, None
        if server is not None:
            if self._thread is not None:
                server.shutdown()  # waits for serve_forever, which must have been started
            server.server_close()

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
MAX_CONNECTIONS = 16  # served at once; more are closed at once, unanswered
IDLE_TIMEOUT_S = 10.0  # a connection that sends nothing for this long is closed


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, but at most MAX_CONNECTIONS of them.

    Without a bound, every idle socket someone opened held a thread for ever (3,000 idle
    connections: 3,009 threads).
    """

    daemon_threads = True
    request_queue_size = 64  # the listen backlog: connections beyond the bound are closed fast

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug("health: %d connections open; closing one more", MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client gone before its answer (a broken pipe) is no news; socketserver would
        # print a traceback to stderr, outside the log.
        log.debug("health: request from %s failed", client_address, exc_info=True)


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
            timeout = IDLE_TIMEOUT_S  # socket timeout: an idle or slow client is let go

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

        self._server = _BoundedServer(self.address, Handler)

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

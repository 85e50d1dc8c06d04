"""Where a simulated serial device's bytes go: a pty or a TCP socket, unpluggable.

- ``PtyEndpoint``: a pseudo-terminal. The driver opens the slave side; with
  ``link`` the simulator keeps a symlink there pointing at the current slave,
  so the configured path stays the same across unplug/replug (the new pty has a
  new /dev/pts number). Unplug closes the pty: the driver's next read fails.
- ``TcpEndpoint``: a TCP server on ``host:port`` with one client at a time (like
  a serial-to-Ethernet converter; a new client replaces the old one). Unplug
  closes the server and the client; replug listens again on the same port.
- ``EndpointDevice``: what every simulated device on an endpoint shares: plug it
  in on start, unplug and replug on demand, close it with the device.

``endpoint_for_port`` picks the endpoint that serves a configured ``port``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import threading
import time
import tty
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import urlsplit

_log = logging.getLogger("lineside.simulators.endpoint")

WRITE_CHUNK = 4096


class SerialEndpoint(Protocol):
    """The device side of a serial link that can be unplugged and plugged back."""

    @property
    def url(self) -> str: ...

    def plug(self) -> None: ...

    def unplug(self) -> None: ...

    def write_some(self, data: bytes, timeout: float) -> int:
        """Write what can be written within timeout; 0 when nobody can receive yet."""
        ...

    def close(self) -> None: ...


class PtyEndpoint:
    """A pseudo-terminal; ``url`` is the symlink ``link`` or else the slave's path."""

    def __init__(self, link: Path | str | None = None) -> None:
        self._link = Path(link) if link is not None else None
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_name = ""

    @property
    def url(self) -> str:
        return str(self._link) if self._link is not None else self._slave_name

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        with self._lock:
            if self._master is not None:
                return
            if self._link is not None:
                _check_link_is_ours(self._link)
            master, slave = os.openpty()
            # raw before anyone opens it: no echo back to the master, no CR→LF mapping
            tty.setraw(slave)
            os.set_blocking(master, False)
            # the simulator holds the slave open too, so a driver closing it never hangs it up
            self._master, self._slave = master, slave
            self._slave_name = os.ttyname(slave)
            if self._link is not None:
                _replace_symlink(self._link, self._slave_name)

    def unplug(self) -> None:
        with self._lock:
            if self._link is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._link.unlink()
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None

    def write_some(self, data: bytes, timeout: float) -> int:
        with self._lock:
            master = self._master
            written = -1 if master is None else _write_fd(master, data, timeout)
        if written < 0:  # unplugged: wait a little so callers do not spin
            time.sleep(timeout)
            return 0
        return written

    def close(self) -> None:
        self.unplug()


def _check_link_is_ours(link: Path) -> None:
    """Never replace a real device, or a symlink to one (/dev/serial/by-id/…), with a pty."""
    if link.is_symlink():
        target = os.readlink(link)
        if not target.startswith("/dev/pts/"):
            raise ValueError(f"{link} links to {target}, not a simulator's pty: not replacing it")
    elif link.exists():
        raise ValueError(f"{link} exists and is not a simulator's link: not replacing it")


def _replace_symlink(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    os.replace(temporary, link)  # atomic: a driver never sees the link missing mid-replug


def _write_fd(fd: int, data: bytes, timeout: float) -> int:
    try:
        _, writable, _ = select.select([], [fd], [], timeout)
        if not writable:
            return 0
        return os.write(fd, data[:WRITE_CHUNK])
    except BlockingIOError:
        return 0
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EINTR):
            return 0
        raise


class TcpEndpoint:
    """A TCP server with one client at a time; ``url`` is ``socket://host:port``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, settle_s: float = 0.2) -> None:
        self._host = host
        self._port = port
        self._settle_s = settle_s
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None
        self._client_ready_at = 0.0

    @property
    def url(self) -> str:
        return f"socket://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def plugged(self) -> bool:
        return self._server is not None

    def plug(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                server.bind((self._host, self._port))
                server.listen(4)
            except OSError as exc:
                server.close()
                # OSError's own text names no address; whoever reads it needs the port.
                raise OSError(
                    exc.errno, f"cannot listen on {self._host}:{self._port}: {exc.strerror}"
                ) from None
            server.setblocking(False)
            self._port = server.getsockname()[1]  # port 0 picks one; replug keeps it
            self._server = server

    def unplug(self) -> None:
        with self._lock:
            for sock in (self._client, self._server):
                if sock is not None:
                    _close_socket(sock)
            self._client = self._server = None

    def has_client(self) -> bool:
        with self._lock:
            self._accept()
            return self._client is not None

    def write_some(self, data: bytes, timeout: float) -> int:
        with self._lock:
            self._accept()
            written = -1 if self._server is None else self._send(data, timeout)
        if written < 0:
            time.sleep(timeout)
            return 0
        return written

    def close(self) -> None:
        self.unplug()

    def _accept(self) -> None:
        if self._server is None:
            return
        while True:
            try:
                client, _ = self._server.accept()
            except (BlockingIOError, OSError):
                return
            if self._client is not None:
                _close_socket(self._client)
            client.setblocking(False)
            self._client = client
            self._client_ready_at = time.monotonic() + self._settle_s

    def _send(self, data: bytes, timeout: float) -> int:
        client = self._client
        if client is None or time.monotonic() < self._client_ready_at:
            return -1
        try:
            _, writable, _ = select.select([], [client], [], timeout)
            return client.send(data[:WRITE_CHUNK]) if writable else 0
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:  # the client went away: wait for the next one
            _log.debug("simulator endpoint: client lost: %s", exc)
            _close_socket(client)
            self._client = None
            return -1


def _close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def endpoint_for_port(port: str) -> PtyEndpoint | TcpEndpoint:
    """The endpoint that serves a device configured with ``port``."""
    if port.startswith("socket://"):
        parts = urlsplit(port)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"cannot listen on {port!r}: expected socket://HOST:PORT")
        return TcpEndpoint(parts.hostname, parts.port)
    if "://" in port:
        raise ValueError(f"cannot simulate a device on {port!r}: use socket://HOST:PORT or a path")
    return PtyEndpoint(link=Path(port))


class EndpointDevice(ABC):
    """A simulated device on an endpoint: plugged in on start, closed with it.

    Subclasses say how their background work starts, stops and shows it is running.
    """

    def __init__(self, endpoint: PtyEndpoint | TcpEndpoint) -> None:
        self.endpoint = endpoint

    @property
    def url(self) -> str:
        """What the driver's ``port`` should be."""
        return self.endpoint.url

    def start(self) -> Self:
        if not self._running():
            self.endpoint.plug()
            self._start_work()
        return self

    def close(self) -> None:
        self._stop_work()
        self.endpoint.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def unplug(self) -> None:
        self.endpoint.unplug()

    def replug(self) -> None:
        self.endpoint.plug()

    @abstractmethod
    def _running(self) -> bool: ...

    @abstractmethod
    def _start_work(self) -> None: ...

    @abstractmethod
    def _stop_work(self) -> None: ...

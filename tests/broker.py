"""A real mosquitto for tests and benchmarks: started on a free loopback port, stoppable and
restartable on the same port (to cut the link), optionally with TLS and a password file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lineside.agent.sync.contract import Contract

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
INSTALL_HINT = "mosquitto is missing: install it with 'sudo apt-get install mosquitto'"


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_CANDIDATES if os.access(p, os.X_OK)), None)


def find_passwd_tool() -> str | None:
    found = shutil.which("mosquitto_passwd")
    if found:
        return found
    return "/usr/bin/mosquitto_passwd" if os.access("/usr/bin/mosquitto_passwd", os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener: the broker's certificate, the CA it trusts for client certificates."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = True
    password_file: Path | None = None


class Broker:
    """One mosquitto process; start(), stop(), restart() keep the port."""

    def __init__(
        self,
        workdir: Path,
        *,
        executable: str,
        port: int | None = None,
        tls: BrokerTls | None = None,
        persistence: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.executable = executable
        self.port = port or free_port()
        self.tls = tls
        self.persistence = persistence
        self.extra = extra
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf.write_text(self._config())

    def _config(self) -> str:
        lines = [
            f"listener {self.port} 127.0.0.1",
            # The default (1000) drops QoS 1 messages queued for a slow subscriber.
            "max_queued_messages 0",
            f"persistence {'true' if self.persistence else 'false'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if self.persistence:
            lines.append(f"persistence_location {self.workdir}/")
        if os.geteuid() == 0:
            # As root, mosquitto would switch to user 'mosquitto', who cannot read our files.
            lines.append("user root")
        if self.tls is None:
            lines.append("allow_anonymous true")
        else:
            lines += [
                f"cafile {self.tls.cafile}",
                f"certfile {self.tls.certfile}",
                f"keyfile {self.tls.keyfile}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
            if self.tls.password_file is not None:
                lines += ["allow_anonymous false", f"password_file {self.tls.password_file}"]
            else:
                lines.append("allow_anonymous true")
        lines += self.extra
        return "\n".join(lines) + "\n"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start and wait until the port accepts connections (retrying a busy port)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    [self.executable, "-c", str(self.conf)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            if self._wait_ready(deadline):
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{self.tail()}")
            time.sleep(0.2)  # the old socket may linger a moment after a restart

    def _wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False  # exited: port still busy, or a config error (see tail())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (mosquitto saves persistence and closes) or SIGKILL; waits for the exit."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def reload(self) -> None:
        """SIGHUP: mosquitto reads its password and ACL files again."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no mosquitto log)"


def make_password_file(path: Path, username: str, password: str) -> Path:
    """A mosquitto password file, made by mosquitto_passwd (batch mode)."""
    tool = find_passwd_tool()
    if tool is None:
        raise FileNotFoundError("mosquitto_passwd (package mosquitto-clients or mosquitto)")
    subprocess.run([tool, "-c", "-b", str(path), username, password], check=True,
                   capture_output=True)
    return path


@dataclass(frozen=True)
class TlsMaterial:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path  # a CA that signed nothing here: the "wrong CA"


def make_tls_material(directory: Path) -> TlsMaterial:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate, another CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("openssl")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=directory)

    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-subj", f"/CN=lineside test {ca}")
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn, extfile in (("server", "localhost", "server.ext"), ("client", "press-3", None)):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        sign = ["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.crt"]
        if extfile:
            sign += ["-extfile", extfile]
        run(*sign)
    return TlsMaterial(
        ca_cert=directory / "ca.crt", ca_key=directory / "ca.key",
        server_cert=directory / "server.crt", server_key=directory / "server.key",
        client_cert=directory / "client.crt", client_key=directory / "client.key",
        other_ca_cert=directory / "other-ca.crt",
    )


# -- a central system's view, for assertions ------------------------------------------------
def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str = "condition") -> None:
    """Poll predicate until it holds; fail with what after timeout_s (never a bare sleep)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


def schema_of(topic: str) -> str | None:
    """The schema every payload lineside publishes on topic must fit (lineside/schemas/)."""
    if topic.endswith("/reply/replay"):
        return "reply.replay"
    if "/reply/" in topic:
        return "reply"
    return {"tx": "tx", "alerts": "alert", "status": "status", "stock": "stock"}.get(
        topic.rsplit("/", 1)[-1]
    )


class Consumer:
    """A subscriber that records every message; reconnects by itself (persistent if asked).

    Every payload on a gateway topic (P/tx, P/alerts, P/status, P/stock, P/reply/#) is
    checked against its shipped schema; stop() fails the test when one did not fit.
    """

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        client_id: str | None = None,
        persistent: bool = False,
        tls: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        protocol: int = mqtt.MQTTv311,
        check_schemas: bool = True,
    ) -> None:
        self.port = port
        self.contract = Contract() if check_schemas else None
        self.invalid: list[str] = []
        self.topics = topics
        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = threading.Event()
        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": client_id or f"test-consumer-{uuid.uuid4().hex[:8]}",
            "protocol": protocol,
        }
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = not persistent
        self.client = mqtt.Client(**kwargs)
        if tls is not None:
            self.client.tls_set_context(tls)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.1, 1)
        self.client.max_inflight_messages_set(100)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
        self._check(msg.topic, bytes(msg.payload))

    def _check(self, topic: str, payload: bytes) -> None:
        name = schema_of(topic)
        if self.contract is None or name is None or not payload:
            return
        try:
            errors = self.contract.errors(name, json.loads(payload))
        except ValueError as exc:
            errors = [f"not JSON: {exc}"]
        if errors:
            with self.lock:
                self.invalid.append(f"{topic}: {'; '.join(errors)}: {payload[:300]!r}")

    def start(self) -> Consumer:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        wait_until(self.subscribed.is_set, 10, "the consumer's SUBACK")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        assert not self.invalid, "payloads that break the schemas:\n" + "\n".join(self.invalid)

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[Any]:
        return [json.loads(p) for p in self.on(topic)]


def tx_check(messages: list[bytes]) -> tuple[list[dict[str, Any]], int]:
    """Check P/tx messages as a consumer must: seq gapless from the first, repeats identical.

    Returns the transactions of each seq's first copy, in seq order, and how many
    messages were repeats. Raises AssertionError on a gap, a reorder or a changed repeat.
    """
    first: dict[int, bytes] = {}
    order: list[int] = []
    repeats = 0
    for payload in messages:
        seq = json.loads(payload)["seq"]
        if seq in first:
            assert first[seq] == payload, f"seq {seq} was re-sent with different content"
            repeats += 1
            continue
        assert not order or seq == order[-1] + 1, f"seq {seq} after {order[-1]}: gap or reorder"
        first[seq] = payload
        order.append(seq)
    txs = [tx for seq in order for tx in json.loads(first[seq])["transactions"]]
    return txs, repeats

"""A Modbus server the project does not otherwise use: libmodbus (C), built by the tests.

``build_server`` compiles ``libmodbus_server.c`` with gcc against Debian's libmodbus-dev
(3.1.6); ``LibmodbusServer`` runs it over TCP or RTU and drives it through its stdin
(values, delays, late answers, exceptions: see the C file). RTU runs over a pty pair made
by socat (``PtyPair``): one end for the server, the other for lineside. A missing
compiler, header or socat is an error, never a skip: .ci/run installs them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

SOURCE = Path(__file__).with_name("libmodbus_server.c")
HEADER = Path("/usr/include/modbus/modbus.h")
INSTALL_HINT = "apt-get install gcc libmodbus-dev socat (as .ci/run does)"
START_S = 10.0


def build_server(directory: Path) -> Path:
    """The server's binary, compiled into directory."""
    gcc = shutil.which("gcc")
    if gcc is None or not HEADER.exists():
        raise RuntimeError(f"gcc and {HEADER} are needed: {INSTALL_HINT}")
    binary = directory / "libmodbus_server"
    subprocess.run(
        [gcc, "-O1", "-Wall", "-o", str(binary), str(SOURCE), f"-I{HEADER.parent}", "-lmodbus"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return binary


class LibmodbusServer:
    """One server process; ``command`` sends a line and returns what follows "ok"."""

    def __init__(self, binary: Path, *args: str) -> None:
        self._process = subprocess.Popen(
            [str(binary), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = self._line()
        if not ready.startswith("ready"):
            self.stop()
            raise RuntimeError(f"libmodbus server did not start: {ready!r}; {self._errors()}")
        self.port = int(ready.split()[1]) if len(ready.split()) > 1 else 0

    @classmethod
    def tcp(cls, binary: Path) -> LibmodbusServer:
        return cls(binary, "tcp", "0")

    @classmethod
    def rtu(cls, binary: Path, device: Path, unit: int) -> LibmodbusServer:
        return cls(binary, "rtu", str(device), str(unit))

    def command(self, line: str) -> str:
        stdin = self._stdin()
        stdin.write(line + "\n")
        stdin.flush()
        answer = self._line()
        if not answer.startswith("ok"):
            raise RuntimeError(f"libmodbus server: {line!r} -> {answer!r}")
        return answer[2:].strip()

    def get32(self, table: str, address: int) -> int:
        return int(self.command(f"get32 {table} {address}"))

    def stop(self) -> None:
        if self._process.poll() is None:
            if self._process.stdin is not None:
                self._process.stdin.close()  # the server ends when its stdin does
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> LibmodbusServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _stdin(self) -> IO[str]:
        assert self._process.stdin is not None
        return self._process.stdin

    def _line(self) -> str:
        assert self._process.stdout is not None
        return self._process.stdout.readline().strip()

    def _errors(self) -> str:
        return self._process.stderr.read() if self._process.stderr is not None else ""


class PtyPair:
    """Two ptys joined by socat: bytes written to one end are read at the other."""

    def __init__(self, directory: Path) -> None:
        socat = shutil.which("socat")
        if socat is None:
            raise RuntimeError(f"socat is needed: {INSTALL_HINT}")
        self.lineside = directory / "lineside-end"
        self.device = directory / "device-end"
        ends = [f"pty,raw,echo=0,link={p}" for p in (self.lineside, self.device)]
        self._process = subprocess.Popen([socat, *ends], stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_S
        while not (self.lineside.exists() and self.device.exists()):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise RuntimeError("socat did not make the pty pair")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(5)
        if self._process.stderr is not None:
            self._process.stderr.close()


@contextmanager
def rtu_server(binary: Path, directory: Path, unit: int) -> Iterator[tuple[LibmodbusServer, str]]:
    """A libmodbus RTU server for unit on a pty pair; yields it and lineside's port path."""
    pair = PtyPair(directory)
    try:
        with LibmodbusServer.rtu(binary, pair.device, unit) as server:
            yield server, str(pair.lineside)
    finally:
        pair.stop()

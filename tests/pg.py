"""A real PostgreSQL for tests and benchmarks: Debian's server binaries, a cluster made by
initdb in a temporary folder, listening on a free loopback port.

PostgreSQL refuses to run as root: when the tests run as root, the cluster belongs to an
unprivileged user (postgres, or nobody) and the server runs as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tests.broker import free_port

INSTALL_HINT = "PostgreSQL is missing: install it with 'sudo apt-get install postgresql'"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin with initdb (Debian keeps it off PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


class Postgres:
    """One server: start(), stop(); dsn(name) for a database, create_database() for a new one."""

    def __init__(self, bin_dir: Path, *, fsync: bool = False, port: int | None = None) -> None:
        self.bin_dir = bin_dir
        self.port = port or free_port()
        self.fsync = fsync
        self.user = _unprivileged_user() if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="lineside-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.superuser = "lineside"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            user=self.user,
            cwd=self.root,
            **kwargs,
        )

    def start(self) -> Postgres:
        self._run("initdb", "-D", str(self.data), "-U", self.superuser, "-A", "trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=50"
            " -c shared_buffers=64MB"
        )
        try:
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                      "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"PostgreSQL did not start:\n{self.tail()}") from exc
        return self

    def stop(self) -> None:
        """Stop the server (immediate shutdown: a test cluster needs no checkpoint), then
        remove its folder; never leaves a server running without its data folder."""
        pid_file = self.data / "postmaster.pid"
        try:
            if pid_file.exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.superuser} dbname={database}"

    def create_database(self) -> str:
        """A new, empty database; returns its DSN."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no PostgreSQL log)"


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user (postgres or nobody) to run PostgreSQL as")

"""`lineside check` on files made to hurt it: refused with file:line, in little time and memory.

Time and memory are measured and printed; the only limits asserted are generous ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.broker import TlsMaterial
from tests.conftest import REPO

BAD = REPO / "tests" / "data" / "bad_configs"


@dataclass(frozen=True)
class Measured:
    returncode: int
    stderr: str
    seconds: float
    max_rss_mb: float


# Linux carries the exec'ing process's old peak into the new program's ru_maxrss, so a child
# forked straight from pytest reports pytest's own peak. A small parent in between gives the
# measured child a clean start; it reports the child's peak in KiB on its stdout.
MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable] + sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def check_measured(config: Path, tmp_path: Path, timeout_s: float = 60) -> Measured:
    """`lineside check -c config` as a grandchild process, with its own peak RSS (wait4)."""
    err = tmp_path / "stderr.txt"
    started = time.monotonic()
    with err.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-c", MEASURE, "-m", "lineside.agent.cli", "check", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=handle,
            start_new_session=True,
        )
    killer = threading.Timer(timeout_s, lambda: os.killpg(proc.pid, 9))
    killer.start()
    try:
        out, _ = proc.communicate()
    finally:
        killer.cancel()
    measured = Measured(
        proc.returncode,
        err.read_text(errors="replace"),
        time.monotonic() - started,
        int(out.decode().split()[-1]) / 1024 if out.strip() else float("inf"),
    )
    print(
        f"{config.name}: exit {measured.returncode} after {measured.seconds:.2f} s,"
        f" peak RSS {measured.max_rss_mb:.0f} MB"
    )
    return measured


def test_a_billion_laughs_is_refused_at_its_line_without_growing(tmp_path: Path) -> None:
    result = check_measured(BAD / "alias_bomb.yaml", tmp_path)
    assert result.returncode == 2, result  # before: killed after 60 s, past 4 GB
    assert "alias_bomb.yaml:13: (yaml): aliases expand the document by" in result.stderr
    assert result.max_rss_mb < 200  # the interpreter and its imports are some 45 MB


def test_deep_nesting_is_refused_at_its_line_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("gateway: {id: gw, site: s}\nitems: " + "[" * 20_000 + "]" * 20_000 + "\n")
    result = check_measured(path, tmp_path)
    assert result.returncode == 2, result
    assert "deep.yaml:2: (yaml): nested deeper than 64 levels" in result.stderr
    assert "RecursionError" not in result.stderr


# -- the files the config names: `check` reads them as the agent will ----------------------

LINE = """gateway: {{id: press-3, site: plant-a}}
mqtt:
  host: 127.0.0.1
  username: press-3
  password_file: {password}
  tls:
    ca_file: {ca}
    cert_file: {cert}
    key_file: {key}
"""


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineside.agent.cli", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def files_config(tmp_path: Path, tls: TlsMaterial, **files: Path | str) -> Path:
    (tmp_path / "mqtt.password").write_text("s3cret\n")
    names = {
        "password": tmp_path / "mqtt.password",
        "ca": tls.ca_cert,
        "cert": tls.client_cert,
        "key": tls.client_key,
        **files,
    }
    path = tmp_path / "line.yaml"
    path.write_text(LINE.format(**names))
    return path


def test_check_passes_files_the_agent_can_use(tmp_path: Path, tls_material: TlsMaterial) -> None:
    result = check(files_config(tmp_path, tls_material))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("files", "line", "key", "message"),
    [
        ({"password": "missing.password"}, 5, "mqtt.password_file", "No such file"),
        ({"password": "."}, 5, "mqtt.password_file", "Is a directory"),
        ({"password": "empty.password"}, 5, "mqtt.password_file", "is empty"),
        ({"ca": "missing-ca.pem"}, 7, "mqtt.tls.ca_file", "No such file"),
        ({"ca": "line.yaml"}, 7, "mqtt.tls.ca_file", "is not a PEM certificate"),
        ({"key": "other.key"}, 8, "mqtt.tls.cert_file", "belong together"),
    ],
    ids=["password-missing", "password-directory", "password-empty", "ca-missing",
         "ca-not-pem", "key-of-another"],
)  # fmt: skip
def test_check_reads_the_files_the_config_names(
    tmp_path: Path,
    tls_material: TlsMaterial,
    files: dict[str, str],
    line: int,
    key: str,
    message: str,
) -> None:
    (tmp_path / "empty.password").write_text("\n")
    (tmp_path / "other.key").write_bytes(tls_material.ca_key.read_bytes())
    path = files_config(tmp_path, tls_material, **files)
    result = check(path)
    assert result.returncode == 2, result  # before: ok, and then `run` could not start
    assert f"{path}:{line}: {key}: " in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def _other_group(than: int) -> int | None:
    """A group this process may give a file to, other than than (any, as root)."""
    if os.geteuid() == 0:
        return than + 1
    return next((g for g in os.getgroups() if g != than), None)


def test_check_warns_of_a_password_file_others_can_read(
    tmp_path: Path, tls_material: TlsMaterial
) -> None:
    path = files_config(tmp_path, tls_material)
    password = tmp_path / "mqtt.password"
    cases = [(0o600, None, ""), (0o640, None, ""), (0o644, None, "can be read by every user")]
    other = _other_group(path.stat().st_gid)
    if other is not None:
        cases.append((0o640, other, "can be read by group"))
    for mode, group, warning in cases:
        password.chmod(mode)
        if group is not None:
            os.chown(password, -1, group)
        result = check(path)
        assert result.returncode == 0, result.stderr
        if warning:
            assert f"{path}: warning: mqtt.password_file: {password} {warning}" in result.stderr
            assert f"mode {mode:04o}" in result.stderr
        else:
            assert "warning" not in result.stderr, (oct(mode), result.stderr)

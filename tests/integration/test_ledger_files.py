"""The ledger's files on disk: never readable by every user, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import Receive
from lineside.agent.config import load
from tests.conftest import write_config


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000, as a careless shell or service manager may leave it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_a_new_ledger_and_its_wal_and_shm_are_not_world_readable(tmp_path: Path) -> None:
    loaded = load(write_config(tmp_path))
    ledger = open_ledger(loaded)
    try:
        now = datetime.now(UTC)
        result = ledger.execute(
            Receive(key="r1", ts=now, item="STEEL-2MM", location="LINE-3", qty=Decimal(5))
        )
        assert result.ok, result.error
        folder = loaded.data_dir
        files = {
            name: folder / name
            for name in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm")
        }
        modes = {name: oct(mode(path)) for name, path in files.items()}
        print(f"data_dir {oct(mode(folder))}, {modes}")
        assert set(modes.values()) == {"0o640"}, modes  # before: 0o644, data_dir 0o777
        assert mode(folder) == 0o750
    finally:
        ledger.conn.close()


def test_an_in_memory_ledger_makes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lineside.agent.ledger.store import connect

    monkeypatch.chdir(tmp_path)
    connect(Path(":memory:")).close()
    assert list(tmp_path.iterdir()) == []

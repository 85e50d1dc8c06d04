"""A ledger that cannot be written is named by its cause: a full disk says so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lineside.agent import writer
from lineside.agent.writer import ledger_trouble, what_to_do


def _error(message: str, code: int) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code
    return exc


def test_sqlite_full_is_named_the_disk_being_full(tmp_path: Path) -> None:
    exc = _error("database or disk is full", sqlite3.SQLITE_FULL)
    named = ledger_trouble(exc, tmp_path)
    assert named.startswith(f"the disk is full: no space left on {tmp_path}, ")
    assert named.endswith("bytes free (database or disk is full)")
    assert what_to_do(exc, tmp_path) == f"Free disk space on {tmp_path}."


def test_an_io_error_on_a_filesystem_with_no_space_left_is_the_disk_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "free_bytes", lambda _: 4096)
    exc = _error("disk I/O error", sqlite3.SQLITE_IOERR_SHMSIZE)
    assert ledger_trouble(exc, tmp_path) == (
        f"the disk is full: no space left on {tmp_path}, 4,096 bytes free (disk I/O error)"
    )
    assert what_to_do(exc, tmp_path) == f"Free disk space on {tmp_path}."


def test_other_failures_keep_sqlites_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    busy = _error("database is locked", sqlite3.SQLITE_BUSY)
    assert ledger_trouble(busy, tmp_path) == "database is locked"
    assert "write lock" in what_to_do(busy, tmp_path)
    monkeypatch.setattr(writer, "free_bytes", lambda _: 4096)  # a lock is a lock, even so
    assert ledger_trouble(busy, tmp_path) == "database is locked"
    io = _error("disk I/O error", sqlite3.SQLITE_IOERR_WRITE)
    monkeypatch.setattr(writer, "free_bytes", lambda _: 10**9)  # space left: a failing disk
    assert ledger_trouble(io, tmp_path) == "disk I/O error"
    assert "failing" in what_to_do(io, tmp_path)

"""A command of another process (the `lineside` CLI) asks the running agent to commit the
readings that wait in its memory first, so that the command comes after the units counted
before it: an order closed keeps them, a cycle count is compared with a book that has them.

The request and its answer are two rows of the ledger's meta table: the CLI writes a new
token and waits for the agent to write it back, which the agent does right after it has
committed what waited. The agent's publisher lock says whether an agent runs at all.
"""

from __future__ import annotations

import fcntl
import sqlite3
import time
import uuid
from pathlib import Path

from lineside.agent.ledger.store import meta, set_meta

REQUEST_KEY = "handover_request"
ANSWER_KEY = "handover_answer"
POLL_S = 0.05


def agent_lock_path(db_path: Path) -> Path:
    """The lock the running agent holds for as long as it publishes this ledger."""
    return db_path.with_name(db_path.name + ".sync.lock")


def agent_running(db_path: Path) -> bool:
    """Whether an agent holds the ledger's lock (a lock file that cannot even be read is
    taken to mean one does: asking costs a short wait at worst)."""
    path = agent_lock_path(db_path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def ask(conn: sqlite3.Connection, db_path: Path, timeout_s: float) -> bool:
    """Ask the running agent to commit what waits, and wait for its answer: True when it
    answered (or no agent runs), False when none came within timeout_s."""
    if not agent_running(db_path):
        return True
    token = str(uuid.uuid4())
    set_meta(conn, REQUEST_KEY, token)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if meta(conn, ANSWER_KEY) == token:
            return True
        time.sleep(POLL_S)
    return False


def asked(conn: sqlite3.Connection) -> str | None:
    """The token of a request the agent has not answered yet, if there is one."""
    request = meta(conn, REQUEST_KEY)
    if request is None or request == meta(conn, ANSWER_KEY):
        return None
    return request


def answer(conn: sqlite3.Connection, token: str) -> None:
    set_meta(conn, ANSWER_KEY, token)

"""The Ledger: every command through its handler (table.py), once per key, each inside
one unit of work. The ledger's only way in."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any

from lineside.agent.alerts import alert_fields
from lineside.agent.commands import (
    Command,
    CounterReading,
    MeterReading,
    Notice,
    Refused,
    Rejected,
    Result,
    is_reading,
)
from lineside.agent.config import LinesideConfig
from lineside.agent.domain.counters import Number
from lineside.agent.domain.model import MasterData
from lineside.agent.domain.waiting import WaitingReadings
from lineside.agent.handlers.context import Context
from lineside.agent.handlers.table import HANDLERS
from lineside.agent.inputs import BadInput, check_quantity
from lineside.agent.ledger import handover
from lineside.agent.ledger.live import data_version
from lineside.agent.ledger.queries import MASTER_VERSION_KEY, master_overlays
from lineside.agent.ledger.store import ledger_failure, meta
from lineside.agent.ledger.unit import UnitOfWork
from lineside.agent.points import PointMap, point_map
from lineside.clock import Clock, utc_now

log = logging.getLogger("lineside.ledger")
Reading = CounterReading | MeterReading
Flushed = Callable[[list[Command], list[Result]], None]


class Ledger:
    """The ledger file behind its handlers; safe to call from any thread."""

    def __init__(
        self, conn: sqlite3.Connection, config: LinesideConfig, clock: Clock = utc_now
    ) -> None:
        self.conn = conn
        self.clock = clock
        self.context = Context.of(config)
        self._lock = threading.RLock()
        self._last_value: dict[str, str | None] = {}  # a point's last committed value
        self.waiting: WaitingReadings[Reading] = _waiting(config)
        self.on_flushed: Flushed | None = None  # the writer's accounting of waiting readings
        self._seen_version = -1  # PRAGMA data_version when answer_handover last looked

    @property
    def config(self) -> LinesideConfig:
        return self.context.config

    @property
    def points(self) -> PointMap:
        return self.context.points

    @property
    def master(self) -> MasterData:
        with self._lock:
            self._refresh_master()
            return self.context.master

    def reconfigure(self, config: LinesideConfig) -> None:
        """A reloaded config: new points and master data from the next command on."""
        with self._lock:
            try:
                self.flush()  # the waiting readings mean what the old points said
            except sqlite3.Error as exc:
                log.warning(
                    "waiting readings not committed before the reload (%s): "
                    "the next reading counts them again",
                    exc,
                )
            ctx = self.context
            ctx.config, ctx.points, ctx.master_version = config, point_map(config), None
            self.waiting = _waiting(config)

    def stock_snapshot(self) -> list[dict[str, Any]]:
        """Current balances (used-up lots left out), as P/stock and `stock --json` give them."""
        from lineside.agent.reports import stock

        with self._lock:
            return stock(self.conn, self.master)

    # -- readings that wait ------------------------------------------------------------
    def offer(self, commands: list[Command], now: float) -> list[Command]:
        """The writer's commands, in the order they came: a reading that only moves its
        point forward waits (see domain/waiting.py); returned is what to write now, the
        waiting readings first, as soon as anything else comes or their time is up."""
        with self._lock:
            write_now: list[Command] = []
            for command in commands:
                if is_reading(command) and self._may_wait(command):
                    # read now: a rollover's time runs from here, as for an unchanged one
                    self.context.seen_at[command.point] = command.ts
                    if self._known_value(command.point) != command.value:
                        self.waiting.add(command, now)
                else:
                    write_now += self.waiting.take()
                    write_now.append(command)
            if self.waiting.due_in(now) == 0:
                write_now += self.waiting.take()
            return write_now

    def take_waiting(self) -> list[Command]:
        """The waiting readings, for the writer to commit now (it stops)."""
        with self._lock:
            return list(self.waiting.take())

    def due_in(self, now: float) -> float | None:
        with self._lock:
            return self.waiting.due_in(now)

    def flush(self) -> None:
        """Commit the waiting readings now: a command from elsewhere comes after them."""
        with self._lock:
            readings: list[Command] = list(self.waiting.take())
            if not readings:
                return
            results = self.execute_batch(readings)
            if self.on_flushed is not None:
                self.on_flushed(readings, results)

    def answer_handover(self) -> None:
        """Commit what waits when a command of another process (the CLI) asked for it, and
        say so: that command waits for the answer (ledger/handover.py). Checked each time
        round the writer; SQLite's data_version says when anyone else has written at all."""
        with self._lock:
            version = data_version(self.conn)
            if version == self._seen_version:
                return
            self._seen_version = version
            token = handover.asked(self.conn)
            if token is None:
                return
            self.flush()
            handover.answer(self.conn, token)

    def _may_wait(self, reading: Reading) -> bool:
        point = self.points.counters.get(reading.point) or self.points.meters.get(reading.point)
        committed = self._last_value.get(reading.point)
        if point is None or committed is None or not _takes(reading):
            return False  # the handler decides (and refuses) at once
        last: Number = Decimal(committed)
        if isinstance(reading, CounterReading):
            last = int(last)
        return self.waiting.may_wait(reading, last, point.modulus, point.max_delta)

    def _known_value(self, point: str) -> Number | None:
        """What the point's value will be once what waits is committed."""
        waiting = self.waiting.value_of(point)
        if waiting is not None:
            return waiting
        committed = self._last_value.get(point)
        return None if committed is None else Decimal(committed)

    # -- entry points --------------------------------------------------------------------
    def execute(self, command: Command) -> Result:
        """Apply command once: the same key again is answered with the first result. The
        readings that wait are committed first, so it comes after them."""
        with self._lock:
            self.flush()
            if self._unchanged_reading(command):
                return Result(ok=True)
            with UnitOfWork(self.conn) as uow:
                self._refresh_master()
                result = self._apply(uow, command, Isolation.ALONE)
                if result.ok and not result.duplicate:
                    uow.commit()
            if _refusal_to_remember(command, result):
                self._remember_refusal(command, result)
            self._after_commit(command, result)
            return result

    def _remember_refusal(self, command: Command, result: Result) -> None:
        """A refused command's writes went with its rolled-back transaction; its answer is
        kept in one of its own. (A savepoint around every command would cost each one a
        statement journal, a file write of its own, in every batch.)"""
        with UnitOfWork(self.conn) as uow:
            if uow.seen(command.key) is None:
                _remember(uow, command, result)
            uow.commit()

    def execute_batch(self, commands: list[Command]) -> list[Result]:
        """Apply several commands in one SQLite transaction (one fsync); a refused command
        changes nothing and does not undo the others.

        A savepoint around every command would cost each a statement journal (the file
        writes the batch saves), and refusals come almost always before a handler writes. So the
        batch runs without them, and in the rare case a command is refused after it wrote,
        the whole batch is rolled back and run again with a savepoint around each command.
        """
        with self._lock:
            if all(self._unchanged_reading(c) for c in commands):
                return [Result(ok=True) for _ in commands]  # an idle line opens no transaction
        try:
            results = self._run_batch(commands, Isolation.WHEN_WRITTEN)
        except _RefusedAfterWriting:
            results = self._run_batch(commands, Isolation.SAVEPOINT)
        for command, result in zip(commands, results, strict=True):
            self._after_commit(command, result)
        return results

    def _run_batch(self, commands: list[Command], isolation: Isolation) -> list[Result]:
        results: list[Result] = []
        with self._lock, UnitOfWork(self.conn) as uow:
            self._refresh_master()
            for command in commands:
                if self._unchanged_reading(command):
                    results.append(Result(ok=True))
                else:
                    results.append(self._apply(uow, command, isolation))
            uow.commit()
        return results

    # -- idempotency and isolation -------------------------------------------------------
    def _apply(self, uow: UnitOfWork, command: Command, isolation: Isolation) -> Result:
        """Run command once inside the open unit of work; the caller commits.

        The first answer under a key is final, a refusal included: a refusal depends on the
        ledger's state (an unknown item, an order that exists), and re-evaluating it after
        that state changed would apply a request the client was told was refused. Only
        failures that are not the command's (ledger_failure: disk full, busy) raise past
        this, and internal errors (a bug) are answered: neither is remembered, and both
        may be retried under the same key.

        isolation ALONE: the command has the unit of work to itself, and a refusal rolls
        all of it back, so the caller remembers the refusal (execute); otherwise a refusal
        is undone alone (execute_batch) and remembered here.
        """
        stored = uow.seen_as(command.key)
        if stored is not None:
            kind, reply = stored
            if kind != type(command).__name__:  # the key is taken: this command never ran
                error = f"{command.key} was used for another command ({kind})"
                return Result(ok=False, error=error, duplicate=True, detail={"used_for": kind})
            return _duplicate(reply)
        result = self._run(uow, command, isolation)
        if _keyed(command) and (
            result.ok or (isolation is not Isolation.ALONE and not result.internal)
        ):
            _remember(uow, command, result)
        return result

    def _run(self, uow: UnitOfWork, command: Command, isolation: Isolation) -> Result:
        """The command's handler; a refusal undoes everything the handler had written.

        A failure that is the command's own (a constraint it broke, a bug in its handler)
        is that command's internal error, logged with its cause; one that is not (see
        ledger_failure: disk full, I/O error, busy) raises and fails the whole unit of work.
        """
        start_posted, start_alerts = len(uow.posted), len(uow.alerts)
        handler = HANDLERS[type(command)]
        try:
            if isolation is Isolation.ALONE:
                handler(self.context, uow, command)
            elif isolation is Isolation.SAVEPOINT:
                with uow.attempt():
                    handler(self.context, uow, command)
            else:
                written = self.conn.total_changes
                try:
                    with uow.attempt(savepoint=False):
                        handler(self.context, uow, command)
                except Exception as exc:
                    if self.conn.total_changes != written and not ledger_failure(exc):
                        raise _RefusedAfterWriting from None
                    raise
        except Rejected as exc:
            return Result(ok=False, error=str(exc), refused=isinstance(exc, Refused))
        except _RefusedAfterWriting:
            raise
        except Exception as exc:
            if ledger_failure(exc):
                raise
            log.error(
                "INTERNAL ERROR: %s %s refused: %s: %s",
                type(command).__name__,
                command.key,
                type(exc).__name__,
                exc,
                exc_info=True,
            )
            error = f"internal error: {type(exc).__name__}: {exc}"
            return Result(ok=False, error=error, internal=True)
        return Result(
            ok=True,
            transactions=tuple(uow.posted[start_posted:]),
            alerts=tuple(uow.alerts[start_alerts:]),
        )

    # -- what the writer remembers between commands --------------------------------------
    def _after_commit(self, command: Command, result: Result) -> None:
        if result.ok and is_reading(command):
            self._last_value[command.point] = str(command.value)
            self.context.seen_at[command.point] = command.ts
        for alert in result.alerts:
            log.debug("alert %s", alert_fields(alert))

    def _unchanged_reading(self, command: Command) -> bool:
        """Idle counters cost no SQLite write at all (SD cards wear out)."""
        if not is_reading(command):
            return False
        if self._last_value.get(command.point, "\0") != str(command.value):
            return False
        self.context.seen_at[command.point] = command.ts  # a rollover's time runs from here
        return True

    def _refresh_master(self) -> None:
        """Rebuild master data when item.put / bom.put (from any process) changed it."""
        conn = self.conn
        self.context.refresh_master(meta(conn, MASTER_VERSION_KEY), lambda: master_overlays(conn))


def _waiting(config: LinesideConfig) -> WaitingReadings[Reading]:
    ledger = config.ledger
    return WaitingReadings(float(ledger.commit_interval_s), float(ledger.post_interval_s))


def _takes(reading: Reading) -> bool:
    """Whether the handler would take the reading's value (a refusal is never pended)."""
    value = reading.value
    if isinstance(reading, CounterReading):
        return isinstance(value, int) or (value.is_finite() and value == int(value))
    try:
        check_quantity(reading.value)
    except BadInput:
        return False
    return reading.value >= 0


class Isolation(Enum):
    """How a refused command's writes are undone without undoing the others'."""

    ALONE = "alone"  # its own transaction: rolled back whole
    SAVEPOINT = "savepoint"  # a savepoint around it
    WHEN_WRITTEN = "when written"  # none; refused after writing: the batch runs again


class _RefusedAfterWriting(Exception):
    """A command of a batch run without savepoints was refused after it had written."""


def _keyed(command: Command) -> bool:
    """Readings and notices carry no client's key (a reading's key is its point, the same
    for every value): only commands someone sent under a request id are remembered."""
    return not (is_reading(command) or isinstance(command, Notice))


def _refusal_to_remember(command: Command, result: Result) -> bool:
    """A refusal is the command's answer for good; a bug's internal error is not: the same
    key again, once the bug is fixed, must run."""
    return not (result.ok or result.duplicate or result.internal) and _keyed(command)


def _remember(uow: UnitOfWork, command: Command, result: Result) -> None:
    uow.remember(command.key, type(command).__name__, command.ts, _stored(result))


def _stored(result: Result) -> str:
    """The part of a first answer that a repeat of its key gets again (see _duplicate)."""
    if result.ok:
        return json.dumps({"ok": True, "transactions": [t["id"] for t in result.transactions]})
    return json.dumps({"ok": False, "error": result.error, "refused": result.refused})


def _duplicate(stored: str) -> Result:
    data = json.loads(stored) if stored else {}
    return Result(
        ok=bool(data.get("ok", True)),
        error=data.get("error"),
        refused=bool(data.get("refused", False)),
        duplicate=True,
        detail={"transactions": data.get("transactions", [])},
    )

"""One handler per command, each inside one unit of work. The ledger's only way in."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import ValidationError

from lineside.agent import master as masterdata
from lineside.agent.commands import (
    CloseOrder,
    Command,
    Complete,
    Count,
    CounterReading,
    DiscardHeld,
    MeterReading,
    Notice,
    PutBom,
    PutItem,
    Receive,
    Refused,
    Rejected,
    ReleaseHeld,
    Result,
    Reverse,
    StartOrder,
)
from lineside.agent.config import BomConfig, ItemConfig, LinesideConfig
from lineside.agent.domain.backflush import (
    CannotPost,
    Carry,
    Move,
    Requirement,
    advance,
    completion_move,
    consume,
    explode,
    plan_consumption,
    stage_of,
)
from lineside.agent.domain.counters import interpret
from lineside.agent.domain.model import NO_LOT, Item, MasterData, WorkCenter
from lineside.agent.inputs import BadInput, check_code, check_quantity, decimal_text
from lineside.agent.ledger.store import Posting, UnitOfWork, iso
from lineside.agent.points import PointMap, point_map
from lineside.clock import Clock, utc_now

log = logging.getLogger("lineside.ledger")


@dataclass(frozen=True)
class Production:
    """Units of an item reported under one role at a work center, against an order or not."""

    work_center: str
    item: str
    role: str
    units: int
    order_no: str | None
    event: str
    cause: str
    with_completion: bool

    @property
    def bucket(self) -> str:
        return f"order:{self.order_no}" if self.order_no else f"wc:{self.work_center}:{self.item}"

    def to_json(self) -> dict[str, Any]:
        return {"type": "production", **self.__dict__}


class Ledger:
    """The ledger file behind its handlers; safe to call from any thread."""

    def __init__(
        self, conn: sqlite3.Connection, config: LinesideConfig, clock: Clock = utc_now
    ) -> None:
        self.conn = conn
        self.config = config
        self.clock = clock
        self.points: PointMap = point_map(config)
        self._lock = threading.RLock()
        self._master_version: str | None = None
        self._master = MasterData()
        self._last_value: dict[str, str | None] = {}
        self._seen_at: dict[str, datetime] = {}  # when each point was last read, any value
        self._explosions: dict[tuple[str, str], tuple[list[Requirement], list[str]]] = {}
        self._handlers: dict[type[Command], Callable[[UnitOfWork, Any], None]] = {
            Complete: self._complete,
            CounterReading: self._counter_reading,
            MeterReading: self._meter_reading,
            Receive: self._receive,
            Count: self._count,
            StartOrder: self._start_order,
            CloseOrder: self._close_order,
            Reverse: self._reverse,
            PutItem: self._put_item,
            PutBom: self._put_bom,
            Notice: self._notice,
            ReleaseHeld: self._release_held,
            DiscardHeld: self._discard_held,
        }

    # -- entry point ---------------------------------------------------------------------
    def execute(self, command: Command) -> Result:
        """Apply command once: the same key again is answered with the first result."""
        with self._lock:
            if self._unchanged_reading(command):
                return Result(ok=True)
            with UnitOfWork(self.conn) as uow:
                self._refresh_master(uow)
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
        statement journal: a fifth of the one-command-per-transaction rate.)"""
        with UnitOfWork(self.conn) as uow:
            if uow.seen(command.key) is None:
                _remember(uow, command, result)
            uow.commit()

    def execute_batch(self, commands: list[Command]) -> list[Result]:
        """Apply several commands in one SQLite transaction (one fsync); a refused command
        changes nothing and does not undo the others.

        A savepoint around every command would cost each a statement journal (a quarter of
        the batched rate), and refusals come almost always before a handler writes. So the
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
            self._refresh_master(uow)
            for command in commands:
                if self._unchanged_reading(command):
                    results.append(Result(ok=True))
                else:
                    results.append(self._apply(uow, command, isolation))
            uow.commit()
        return results

    def _apply(self, uow: UnitOfWork, command: Command, isolation: Isolation) -> Result:
        """Run command once inside the open unit of work; the caller commits.

        The first answer under a key is final, a refusal included: a refusal depends on the
        ledger's state (an unknown item, an order that exists), and re-evaluating it after
        that state changed would apply a request the client was told was refused. Only
        failures that are not the command's (ledger_failure: disk full, busy) raise past
        this, remember nothing and may be retried under the same key.

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
        if (
            _keyed(command)
            and not result.internal
            and (result.ok or isolation is not Isolation.ALONE)
        ):
            _remember(uow, command, result)
        return result

    def _run(self, uow: UnitOfWork, command: Command, isolation: Isolation) -> Result:
        """The command's handler; a refusal undoes everything the handler had written.

        A failure that is the command's own (a constraint it broke, a bug in its handler)
        is that command's refusal, logged with its cause; one that is not (see
        ledger_failure: disk full, I/O error, busy) raises and fails the whole unit of work.
        """
        start_posted, start_alerts = len(uow.posted), len(uow.alerts)
        handler = self._handlers[type(command)]
        try:
            if isolation is Isolation.ALONE:
                handler(uow, command)
            elif isolation is Isolation.SAVEPOINT:
                with uow.attempt():
                    handler(uow, command)
            else:
                written = self.conn.total_changes
                try:
                    with uow.attempt(savepoint=False):
                        handler(uow, command)
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
            return Result(
                ok=False, error=f"internal error: {type(exc).__name__}: {exc}", internal=True
            )
        return Result(
            ok=True,
            transactions=tuple(uow.posted[start_posted:]),
            alerts=tuple(uow.alerts[start_alerts:]),
        )

    def _after_commit(self, command: Command, result: Result) -> None:
        if result.ok and isinstance(command, CounterReading | MeterReading):
            self._last_value[command.point] = str(command.value)
            self._seen_at[command.point] = command.ts
        for alert in result.alerts:
            log.debug("alert %s", " ".join(f"{k}={v}" for k, v in alert.items()))

    @property
    def master(self) -> MasterData:
        with self._lock:
            self._refresh_master()
            return self._master

    def _unchanged_reading(self, command: Command) -> bool:
        """Idle counters cost no SQLite write at all (SD cards wear out)."""
        if not isinstance(command, CounterReading | MeterReading):
            return False
        if self._last_value.get(command.point, "\0") != str(command.value):
            return False
        self._seen_at[command.point] = command.ts  # a rollover's time runs from here
        return True

    def _refresh_master(self, uow: UnitOfWork | None = None) -> None:
        """Rebuild master data when item.put / bom.put (from any process) changed it."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'master_version'").fetchone()
        version = row[0] if row else "0"
        if version != self._master_version:
            self._master = masterdata.build(self.config, masterdata.read_overlays(self.conn))
            self._master_version = version
            self._explosions.clear()

    # -- production ----------------------------------------------------------------------
    def _complete(self, uow: UnitOfWork, cmd: Complete) -> None:
        wc = self._work_center(cmd.work_center)
        if cmd.good < 0 or cmd.scrap < 0:
            raise Rejected("good and scrap must be 0 or more")
        if cmd.stage is not None and cmd.stage not in wc.stages:
            raise Rejected(f"work center {wc.code} has no stage {cmd.stage!r}")
        if cmd.stage is not None and cmd.scrap:
            raise Rejected(
                "scrap is reported without --stage: scrapped units consume the"
                " components of the good counter"
            )
        cause = cmd.cause or cmd.key
        if cmd.stage is not None:
            self._produce(uow, wc, f"stage:{cmd.stage}", cmd.good, cmd.key, cause, cmd.ts)
            return
        self._produce(uow, wc, "good", cmd.good, cmd.key, cause, cmd.ts)
        self._produce(uow, wc, "scrap", cmd.scrap, cmd.key, cause, cmd.ts)

    def _produce(
        self,
        uow: UnitOfWork,
        wc: WorkCenter,
        role: str,
        units: int,
        event: str,
        cause: str,
        ts: datetime,
    ) -> None:
        if units == 0:
            return
        active = uow.active_order(wc.code)
        order_no, item = active if active else (None, wc.item)
        if item is None:
            production = Production(wc.code, "", role, units, None, event, cause, role == "good")
            self._hold(uow, production, "no active order and no default item", ts)
            return
        production = Production(wc.code, item, role, units, order_no, event, cause, role == "good")
        self._post_production(uow, production, ts, may_hold=True)

    def _post_production(
        self, uow: UnitOfWork, p: Production, ts: datetime, *, may_hold: bool
    ) -> str | None:
        """Post p, or return why it must wait (and hold it when may_hold)."""
        wc = self._work_center(p.work_center)
        master = self._master
        posting = Posting(ts, p.event, p.cause, p.order_no, p.work_center)
        try:
            completion = (
                completion_move(master, wc, p.item, p.units, p.order_no or NO_LOT)
                if p.with_completion
                else None
            )
        except CannotPost as exc:  # the finished item itself is unknown: all of it waits
            return self._hold(uow, p, str(exc), ts) if may_hold else str(exc)
        try:
            requirements, components = self._explosion(p.item, p.role)
            stock = uow.lots_of(components, wc.location) if components else {}
            carries = uow.carries(p.bucket, components)
            plan = plan_consumption(
                master, wc, p.item, p.role, p.units, carries, stock, requirements
            )
        except CannotPost as exc:
            return self._wait(uow, p, completion, posting, str(exc), ts, may_hold)
        if plan.shortages and wc.on_shortage == "hold":
            missing = ", ".join(f"{s.item} short {s.missing}" for s in plan.shortages)
            return self._wait(uow, p, completion, posting, f"shortage: {missing}", ts, may_hold)
        moves = [completion, *plan.moves] if completion is not None else list(plan.moves)
        self._post_moves(uow, moves, posting)
        uow.save_carries(p.bucket, dict(plan.carries))
        for code, qty in plan.standard_measured.items():
            uow.add_standard(p.bucket, code, qty, p.order_no, p.work_center)
        for short in plan.shortages:
            self._negative_alert(uow, short.item, short.location, ts, p.event, short.missing)
        return None

    def _wait(
        self,
        uow: UnitOfWork,
        p: Production,
        completion: Move | None,
        posting: Posting,
        reason: str,
        ts: datetime,
        may_hold: bool,
    ) -> str:
        """The backflush waits; the completion does not (production is never blocked)."""
        if not may_hold:
            return reason
        if completion is not None:
            self._post_move(uow, completion, posting)
            p = Production(**{**p.__dict__, "with_completion": False})
        return self._hold(uow, p, reason, ts)

    def _explosion(self, item: str, role: str) -> tuple[list[Requirement], list[str]]:
        """explode() and the stocked items it touches, remembered until master data change."""
        key = (item, role)
        cached = self._explosions.get(key)
        if cached is None:
            requirements = explode(self._master, item, stage_of(role))
            cached = self._explosions[key] = (requirements, [r.item for r in requirements])
        return cached

    def _hold(self, uow: UnitOfWork, p: Production, reason: str, ts: datetime) -> str:
        held_id = uow.hold(f"{p.event}/{p.role}", ts, p.work_center, reason, p.to_json())
        uow.alert(
            "held",
            ts,
            held_id=held_id,
            work_center=p.work_center,
            item=p.item or None,
            units=p.units,
            role=p.role,
            reason=reason,
        )
        return reason

    def _retry_held(self, uow: UnitOfWork, ts: datetime) -> None:
        """Post what waited for stock or master data, oldest first; the rest keeps waiting."""
        for held_id, _key, command in uow.held_events():
            if command.get("type") != "production":
                continue
            fields = {k: v for k, v in command.items() if k != "type"}
            production = Production(**fields)
            if not production.item:
                continue
            reason = self._retry_one(uow, production, ts)
            if reason is None:
                uow.resolve_held(held_id, "posted", ts)
            else:
                uow.still_held(held_id, reason)

    def _retry_one(self, uow: UnitOfWork, production: Production, ts: datetime) -> str | None:
        """Why production still cannot post, or None when it posted now.

        A held event that no longer fits the config (its work center was removed) raises
        Rejected; that must not refuse the receipt or item.put that merely triggered the
        retry, nor be remembered as that command's answer: the event keeps waiting instead.
        """
        try:
            with uow.attempt():
                return self._post_production(uow, production, ts, may_hold=False)
        except Rejected as exc:
            return str(exc)

    # -- readings ------------------------------------------------------------------------
    def _counter_reading(self, uow: UnitOfWork, cmd: CounterReading) -> None:
        point = self.points.counters.get(cmd.point)
        if point is None:
            raise Rejected(f"point {cmd.point!r} is not a counter of any work center")
        if isinstance(cmd.value, Decimal) and cmd.value != cmd.value.to_integral_value():
            raise Rejected(f"counter {cmd.point} read a fraction: {cmd.value}")
        value = int(cmd.value)
        last_text, elapsed_s = self._last_reading(uow, cmd)
        last = None if last_text is None else int(Decimal(last_text))
        delta = interpret(
            last,
            value,
            point.modulus,
            point.max_delta,
            max_rate=point.max_rate,
            elapsed_s=elapsed_s,
        )
        if delta.kind == "unchanged":
            return
        uow.save_counter(cmd.point, str(value), cmd.ts)
        event = f"{cmd.point}:{last}->{value}"
        if delta.kind == "reset":
            uow.alert("counter_reset", cmd.ts, point=cmd.point, last=str(last), value=str(value))
        if delta.kind == "implausible":
            self._hold_implausible(uow, point.work_center, point.role, int(delta.delta), event, cmd)
            return
        if delta.counts:
            wc = self._work_center(point.work_center)
            self._produce(uow, wc, point.role, int(delta.delta), event, event, cmd.ts)

    def _last_reading(
        self, uow: UnitOfWork, cmd: CounterReading | MeterReading
    ) -> tuple[str | None, float | None]:
        """The point's last value, and the seconds since it was last read: since the last
        reading of any value this process saw, else since the stored value was written."""
        state = uow.counter_state(cmd.point)
        if state is None:
            return None, None
        value, stored_ts = state
        since = self._seen_at.get(cmd.point) or datetime.fromisoformat(stored_ts)
        return value, (cmd.ts - since).total_seconds()

    def _hold_implausible(
        self, uow: UnitOfWork, wc: str, role: str, units: int, event: str, cmd: Command
    ) -> None:
        reason = f"implausible jump of {units} units (above max_delta)"
        command = {
            "type": "implausible",
            "work_center": wc,
            "role": role,
            "units": units,
            "event": event,
        }
        held_id = uow.hold(event, cmd.ts, wc, reason, command)
        uow.alert(
            "implausible_delta",
            cmd.ts,
            held_id=held_id,
            work_center=wc,
            role=role,
            units=units,
            event=event,
        )

    def _meter_reading(self, uow: UnitOfWork, cmd: MeterReading) -> None:
        meter = self.points.meters.get(cmd.point)
        if meter is None:
            raise Rejected(f"point {cmd.point!r} is not a meter")
        _checked(check_quantity, cmd.value, f"meter {cmd.point} total")
        if cmd.value < 0:
            raise Rejected(
                f"meter {cmd.point} read a negative total {cmd.value}: a bad reading, not"
                " consumption"
            )
        last_text, elapsed_s = self._last_reading(uow, cmd)
        last = None if last_text is None else Decimal(last_text)
        delta = interpret(
            last,
            cmd.value,
            meter.modulus,
            meter.max_delta,
            max_rate=meter.max_rate,
            elapsed_s=elapsed_s,
        )
        if delta.kind == "unchanged":
            return
        uow.save_counter(cmd.point, str(cmd.value), cmd.ts)
        event = f"{cmd.point}:{last}->{cmd.value}"
        if delta.kind == "reset":
            uow.alert(
                "counter_reset",
                cmd.ts,
                point=cmd.point,
                last=None if last is None else decimal_text(last),
                value=decimal_text(cmd.value),
            )
        if delta.kind == "implausible":
            command = {
                "type": "measured",
                "work_center": meter.work_center,
                "item": meter.item,
                "qty": decimal_text(Decimal(delta.delta)),
                "event": event,
            }
            reason = f"implausible meter jump of {delta.delta} (above max_delta)"
            held_id = uow.hold(event, cmd.ts, meter.work_center, reason, command)
            uow.alert(
                "implausible_delta",
                cmd.ts,
                held_id=held_id,
                point=cmd.point,
                qty=decimal_text(Decimal(delta.delta)),
                event=event,
            )
            return
        if not delta.counts:
            return
        self._post_measured(uow, meter.work_center, meter.item, Decimal(delta.delta), event, cmd.ts)

    def _post_measured(
        self, uow: UnitOfWork, wc_code: str, item_code: str, qty: Decimal, event: str, ts: datetime
    ) -> None:
        wc = self._work_center(wc_code)
        item = self._item(item_code)
        active = uow.active_order(wc.code)
        order_no = active[0] if active else None
        bucket = f"measured:order:{order_no}" if order_no else f"measured:wc:{wc.code}"
        carry = uow.carries(bucket, [item.code]).get(item.code, Carry())
        post, new_carry = advance(item, carry, qty)
        uow.save_carry(bucket, item.code, new_carry)
        moves, short = consume(
            item, wc.location, post, "measured", uow.lots(item.code, wc.location)
        )
        posting = Posting(ts, event, event, order_no, wc.code)
        self._post_moves(uow, moves, posting)
        if short is not None:
            self._negative_alert(uow, item.code, wc.location, ts, event, short.missing)

    def stock_snapshot(self) -> list[dict[str, Any]]:
        """Current balances (used-up lots left out), as P/stock and `stock --json` give them."""
        from lineside.agent.reports import stock

        with self._lock:
            return stock(self.conn, self.master)

    def _release_held(self, uow: UnitOfWork, cmd: ReleaseHeld) -> None:
        command = self._open_held(uow, cmd.held_id)
        kind = command.get("type")
        if kind == "implausible":
            wc = self._work_center(command["work_center"])
            self._produce(
                uow,
                wc,
                command["role"],
                int(command["units"]),
                command["event"],
                f"{command['event']} released by hand",
                cmd.ts,
            )
        elif kind == "measured":
            try:
                qty = check_quantity(Decimal(command["qty"]))
            except BadInput as exc:  # held before quantities were bounded: never postable
                raise Rejected(f"held event {cmd.held_id} cannot post: {exc}; discard it") from None
            self._post_measured(
                uow,
                command["work_center"],
                command["item"],
                qty,
                command["event"],
                cmd.ts,
            )
        elif kind == "production" and command.get("item"):
            fields = {k: v for k, v in command.items() if k != "type"}
            reason = self._post_production(uow, Production(**fields), cmd.ts, may_hold=False)
            if reason is not None:
                # Remembered like every refusal, though the cause may pass (stock arrives):
                # a release asks "post it now", and a later try is a new request.
                raise Refused(f"held event {cmd.held_id} still cannot post: {reason}")
        else:
            raise Refused(
                f"held event {cmd.held_id} names no item: discard it and report the"
                " production again once the work center has an order or item"
            )
        uow.resolve_held(cmd.held_id, "posted", cmd.ts)

    def _discard_held(self, uow: UnitOfWork, cmd: DiscardHeld) -> None:
        self._open_held(uow, cmd.held_id)
        if not cmd.reason.strip():
            raise Rejected("say why the event is discarded (--reason)")
        uow.resolve_held(cmd.held_id, "discarded", cmd.ts, reason=f"discarded: {cmd.reason}")

    @staticmethod
    def _open_held(uow: UnitOfWork, held_id: int) -> dict[str, Any]:
        row = uow.conn.execute(
            "SELECT status, command FROM held WHERE id = ?", (held_id,)
        ).fetchone()
        if row is None:
            raise Rejected(f"no held event {held_id}")
        if row[0] != "held":
            raise Refused(f"held event {held_id} is already {row[0]}")
        command: dict[str, Any] = json.loads(row[1])
        return command

    def _notice(self, uow: UnitOfWork, cmd: Notice) -> None:
        uow.alert(cmd.kind, cmd.ts, **cmd.fields)

    def reconfigure(self, config: LinesideConfig) -> None:
        """A reloaded config: new points and master data from the next command on."""
        with self._lock:
            self.config = config
            self.points = point_map(config)
            self._master_version = None

    # -- stock ---------------------------------------------------------------------------
    def _receive(self, uow: UnitOfWork, cmd: Receive) -> None:
        item = self._stocked_item(cmd.item)
        qty = self._quantity(item, cmd.qty, positive=True)
        self._location(cmd.location)
        lot = _lot(_checked(check_code, cmd.lot, "lot"))
        move = Move("receipt", item.code, cmd.location, lot, qty, qty * item.cost)
        self._post_move(uow, move, Posting(cmd.ts, cmd.key, cmd.cause or cmd.key))
        if lot != NO_LOT:
            self._settle_negative(uow, item, cmd.location, lot, qty, cmd)
        self._retry_held(uow, cmd.ts)

    def _settle_negative(
        self, uow: UnitOfWork, item: Item, location: str, lot: str, qty: Decimal, cmd: Receive
    ) -> None:
        """Stock consumed before its lot was booked in went negative without a lot; the lot
        that arrives is where it physically came from, so it covers that negative first."""
        missing = -uow.balance(item.code, location, NO_LOT)
        if missing <= 0:
            return
        settle = min(qty, missing)
        cause = f"settles {item.round(settle)} {item.uom} consumed before lot {lot} was received"
        moves = [
            Move("adjustment", item.code, location, lot, -settle, -settle * item.cost),
            Move("adjustment", item.code, location, NO_LOT, settle, settle * item.cost),
        ]
        self._post_moves(uow, moves, Posting(cmd.ts, cmd.key, cause))

    def _count(self, uow: UnitOfWork, cmd: Count) -> None:
        item = self._stocked_item(cmd.item)
        counted = self._quantity(item, cmd.qty, positive=False)
        if counted < 0:
            raise Rejected("a counted quantity cannot be negative")
        self._location(cmd.location)
        lots = uow.lots(item.code, cmd.location)
        lot = _lot(_checked(check_code, cmd.lot, "lot"))
        book = sum((b.qty for b in lots if cmd.lot is None or b.lot == lot), Decimal(0))
        diff = counted - book
        posting = Posting(cmd.ts, cmd.key, cmd.cause or f"count {cmd.key}")
        if diff > 0 or (diff < 0 and cmd.lot is not None):
            self._post_move(
                uow,
                Move("adjustment", item.code, cmd.location, lot, diff, diff * item.cost),
                posting,
            )
        elif diff < 0:  # a count of the item's total: take the loss from the oldest lots
            moves, _ = consume(item, cmd.location, -diff, "adjustment", lots)
            self._post_moves(uow, moves, posting)
        uow.record_count(
            {
                "ts": iso(cmd.ts),
                "item": item.code,
                "location": cmd.location,
                "lot": cmd.lot,
                "book": decimal_text(book),
                "counted": decimal_text(counted),
                "diff": decimal_text(diff),
                "value": decimal_text(diff * item.cost),
                "event": cmd.key,
            }
        )
        self._retry_held(uow, cmd.ts)

    def _reverse(self, uow: UnitOfWork, cmd: Reverse) -> None:
        tx = uow.transaction(cmd.tx_id)
        if tx is None:
            raise Rejected(f"no transaction {cmd.tx_id!r}")
        if tx["kind"] == "reversal":
            raise Refused(f"{cmd.tx_id} is itself a reversal and cannot be reversed")
        done = uow.reversal_of(cmd.tx_id)
        if done is not None:
            raise Refused(f"{cmd.tx_id} was already reversed by {done}")
        qty, cost = -Decimal(tx["qty"]), -Decimal(tx["cost"])
        move = Move("reversal", tx["item"], tx["location"], tx["lot"], qty, cost)
        posting = Posting(
            cmd.ts,
            cmd.key,
            cmd.cause or f"reversal of {cmd.tx_id}",
            tx["order_no"],
            tx["work_center"],
            reverses=cmd.tx_id,
        )
        uow.post(move, tx["uom"], posting)
        self._retry_held(uow, cmd.ts)

    # -- orders --------------------------------------------------------------------------
    def _start_order(self, uow: UnitOfWork, cmd: StartOrder) -> None:
        wc = self._work_center(cmd.work_center)
        _checked(check_code, cmd.order, "order")
        self._stocked_item(cmd.item)
        qty = _checked(check_quantity, cmd.qty, "qty")
        if qty is not None and qty <= 0:
            raise Rejected("order quantity must be more than 0")
        existing = uow.order(cmd.order)
        if existing is not None:
            raise Refused(
                f"order {cmd.order} already exists ({existing['status']} at "
                f"{existing['work_center']})"
            )
        active = uow.active_order(wc.code)
        if active is not None:
            uow.close_order(active[0], cmd.ts)
            log.info("order %s closed: %s started at %s", active[0], cmd.order, wc.code)
        uow.start_order(cmd.order, wc.code, cmd.item, qty, cmd.ts)

    def _close_order(self, uow: UnitOfWork, cmd: CloseOrder) -> None:
        existing = uow.order(cmd.order)
        if existing is None:
            raise Rejected(f"no order {cmd.order!r}")
        if existing["status"] != "active":
            raise Refused(f"order {cmd.order} is already closed")
        uow.close_order(cmd.order, cmd.ts)

    # -- master data ---------------------------------------------------------------------
    def _put_item(self, uow: UnitOfWork, cmd: PutItem) -> None:
        _checked(check_code, cmd.item, "item")
        try:
            cfg = ItemConfig.model_validate(cmd.data)
        except ValidationError as exc:
            raise Rejected(_pydantic_message(exc)) from None
        self._check_stock_allows(uow, cmd.item, cfg)
        self._check_master(item=(cmd.item, cfg))
        uow.put_master("master_items", cmd.item, cfg.model_dump(mode="json"), cmd.ts)
        self._refresh_master(uow)
        self._retry_held(uow, cmd.ts)

    def _put_bom(self, uow: UnitOfWork, cmd: PutBom) -> None:
        self._item(cmd.item)
        try:
            cfg = BomConfig.model_validate(cmd.data)
        except ValidationError as exc:
            raise Rejected(_pydantic_message(exc)) from None
        for comp in cfg.components:
            self._item(comp.item)
            if comp.item == cmd.item:
                raise Rejected(f"{cmd.item} cannot consume itself")
        self._check_master(bom=(cmd.item, cfg))
        bom = masterdata.bom_from(cmd.item, cfg)
        trial = MasterData(
            self._master.items, {**self._master.boms, cmd.item: bom}, self._master.work_centers
        )
        cycle = masterdata.phantom_cycle(trial, cmd.item)
        if cycle:
            raise Rejected(f"phantom cycle: {' -> '.join(cycle)}")
        uow.put_master("master_boms", cmd.item, cfg.model_dump(mode="json"), cmd.ts)
        self._refresh_master(uow)
        self._retry_held(uow, cmd.ts)

    def _check_master(
        self,
        *,
        item: tuple[str, ItemConfig] | None = None,
        bom: tuple[str, BomConfig] | None = None,
    ) -> None:
        overlays = masterdata.read_overlays(self.conn)
        problems = masterdata.put_problems(self.config, overlays, item=item, bom=bom)
        if problems:
            raise Rejected("; ".join(problems))

    def _check_stock_allows(self, uow: UnitOfWork, code: str, cfg: ItemConfig) -> None:
        """What only stock on hand forbids: balances and journal must keep one meaning."""
        old = self._master.items.get(code)
        on_hand = uow.on_hand(code) if old is not None else []
        if old is None or not on_hand:
            return
        stocked = f"{code} has stock on hand ({decimal_text(sum(on_hand, Decimal(0)))} {old.uom})"
        if cfg.uom != old.uom:
            raise Rejected(f"{stocked}: its uom cannot change from {old.uom} to {cfg.uom}")
        if cfg.decimals < old.decimals:
            raise Rejected(f"{stocked}: its decimals cannot go down from {old.decimals}")
        if cfg.phantom:
            raise Rejected(f"{stocked}: it cannot become a phantom (count it to 0 first)")

    # -- helpers -------------------------------------------------------------------------
    def _post_move(self, uow: UnitOfWork, move: Move, posting: Posting) -> None:
        self._post_moves(uow, [move], posting)

    def _post_moves(self, uow: UnitOfWork, moves: list[Move], posting: Posting) -> None:
        """Post moves with their quantities written at each item's decimals."""
        if not moves:
            return
        items = [self._item(m.item) for m in moves]
        uow.post_many(
            [(_at_decimals(m, i), i.uom) for m, i in zip(moves, items, strict=True)], posting
        )

    def _negative_alert(
        self,
        uow: UnitOfWork,
        item: str,
        location: str,
        ts: datetime,
        event: str,
        missing: Decimal,
    ) -> None:
        """Alert when the balance crosses below zero, not again for every unit after."""
        balance = uow.balance(item, location, NO_LOT)
        if balance + missing < 0:
            return
        uow.alert(
            "negative_stock",
            ts,
            item=item,
            location=location,
            qty=decimal_text(balance),
            event=event,
            action="count this item",
        )

    def _work_center(self, code: str) -> WorkCenter:
        wc = self._master.work_centers.get(code)
        if wc is None:
            known = ", ".join(sorted(self._master.work_centers)) or "none configured"
            raise Rejected(f"unknown work center {code!r} (known: {known})")
        return wc

    def _item(self, code: str) -> Item:
        item = self._master.items.get(code)
        if item is None:
            _checked(check_code, code, "item")  # a clearer reason than "unknown" first
            raise Rejected(f"unknown item {code!r}")
        return item

    def _location(self, code: str) -> None:
        """Stock only moves to a location the config knows: a work center's or a declared one."""
        if code not in self._master.locations:
            _checked(check_code, code, "location")
            known = ", ".join(sorted(self._master.locations)) or "none configured"
            raise Rejected(f"unknown location {code!r} (known: {known})")

    def _stocked_item(self, code: str) -> Item:
        item = self._item(code)
        if item.phantom:
            raise Rejected(f"{code} is a phantom item: it is never stocked")
        return item

    @staticmethod
    def _quantity(item: Item, qty: Decimal, *, positive: bool) -> Decimal:
        qty = _checked(check_quantity, qty, "qty")
        if positive and qty <= 0:
            raise Rejected("quantity must be more than 0")
        if item.round(qty) != qty:
            raise Rejected(f"{qty} has more decimals than {item.code} allows ({item.decimals})")
        return qty


def _at_decimals(move: Move, item: Item) -> Move:
    rounded = item.round(move.qty)
    return move if str(rounded) == str(move.qty) else replace(move, qty=rounded)


def _lot(lot: str | None) -> str:
    return NO_LOT if lot is None else lot


def _checked(check: Callable[[Any, str], Any], value: Any, field: str) -> Any:
    """value through an inputs check (None passes), its BadInput as the command's refusal."""
    if value is None:
        return None
    try:
        return check(value, field)
    except BadInput as exc:
        raise Rejected(str(exc)) from None


class Isolation(Enum):
    """How a refused command's writes are undone without undoing the others'."""

    ALONE = "alone"  # its own transaction: rolled back whole
    SAVEPOINT = "savepoint"  # a savepoint around it
    WHEN_WRITTEN = "when written"  # none; refused after writing: the batch runs again


class _RefusedAfterWriting(Exception):
    """A command of a batch run without savepoints was refused after it had written."""


# SQLite's primary result codes that are the ledger file's trouble, whatever the command.
_LEDGER_FAILURES = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOLFS,
        sqlite3.SQLITE_AUTH,
        sqlite3.SQLITE_NOTADB,
    }
)


def ledger_failure(exc: BaseException) -> bool:
    """Whether exc is the ledger's failure (disk full, I/O error, busy, read-only, closed),
    which no command can be blamed for, rather than the command's own (a constraint it
    broke, a bug): the first stops all writing, the second refuses that command alone."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = exc.sqlite_errorcode
    if code is None:  # raised by Python's sqlite3 itself: a closed ledger, or wrong bindings
        return "closed" in str(exc)
    return code & 0xFF in _LEDGER_FAILURES


def _keyed(command: Command) -> bool:
    """Readings and notices carry no client's key (a reading's key is its point, the same
    for every value): only commands someone sent under a request id are remembered."""
    return not isinstance(command, CounterReading | MeterReading | Notice)


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


def _pydantic_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(payload)"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)

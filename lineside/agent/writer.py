"""The ledger writer: device events from the queue, turned into commands (interpret.py)
and group-committed through the Ledger, one batch of up to BATCH_MAX at a time; readings
that may wait are handed to the Ledger (offer) and come back when they are due."""

from __future__ import annotations

import itertools
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lineside.agent.alerts import alert_fields
from lineside.agent.commands import Command, Notice, Result, is_reading
from lineside.agent.config import LoadedConfig
from lineside.agent.diskuse import free_bytes
from lineside.agent.handlers import Ledger, ledger_failure
from lineside.agent.interpret import Ignored, ScanPlace, ScanRejected, reading_command, scan_command
from lineside.agent.ledger.outbox import is_disk_full
from lineside.agent.metrics import Metrics
from lineside.agent.sync.service import Sync
from lineside.drivers.base import DeviceStatus, Event, Reading, Scan

log = logging.getLogger("lineside.agent")
BATCH_MAX = 500
RETRY_S = 5.0


@dataclass
class DeviceState:
    up: bool | None = None
    since: datetime | None = None
    reason: str = ""
    last_reading_ts: datetime | None = None
    last_values: dict[str, str] = field(default_factory=dict)
    first_point: str | None = None


class LedgerWriter:
    """The Agent's ledger writer thread (a part of the Agent: runtime.py owns its state)."""

    loaded: LoadedConfig
    metrics: Metrics
    events: queue.Queue[Event]
    devices: dict[str, DeviceState]
    ledger: Ledger | None
    sync: Sync | None
    ledger_error: str | None
    writer_heartbeat: float
    _stop: threading.Event
    _pending: list[Command]
    _refused_points: dict[str, str]  # the first refusal of each point's readings
    _scan_seq: itertools.count[int]

    @property
    def db_path(self) -> Path:
        raise NotImplementedError

    def _write_loop(self) -> None:
        assert self.ledger is not None
        self.ledger.on_flushed = self._account  # readings committed before a command
        while not self._stop.is_set() or not self.events.empty():
            self.writer_heartbeat = time.monotonic()
            self._answer_handover()
            batch = self._take_batch(self._wait_s())
            commands = self._pending + [c for e in batch if (c := self._command_for(e))]
            self._pending = []
            commands = self.ledger.offer(commands, time.monotonic())
            if commands:
                self._write(commands)
        if waiting := self.ledger.take_waiting():  # a stop posts every waiting reading
            self._write(waiting)

    def _answer_handover(self) -> None:
        assert self.ledger is not None
        try:
            self.ledger.answer_handover()
        except sqlite3.Error as exc:  # the CLI's command then goes ahead, and says so
            log.warning("a CLI command asked for the waiting readings; not committed: %s", exc)

    def _wait_s(self) -> float:
        """How long to wait for events: at most until the waiting readings are due."""
        assert self.ledger is not None
        due_in = self.ledger.due_in(time.monotonic())
        return 0.5 if due_in is None else min(0.5, due_in)

    def _take_batch(self, timeout_s: float) -> list[Event]:
        try:
            first = (
                self.events.get(timeout=timeout_s) if timeout_s > 0 else self.events.get_nowait()
            )
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < BATCH_MAX:
            try:
                batch.append(self.events.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, commands: list[Command]) -> None:
        assert self.ledger is not None
        try:
            results = self.ledger.execute_batch(commands)
        except Exception as exc:
            if isinstance(exc, sqlite3.Error) and ledger_failure(exc):
                self._ledger_failed(exc, commands)
                return
            # a bug outside any handler must not end the writer: one command at a time
            log.exception(
                "internal error in a batch of %d commands; retrying one by one", len(commands)
            )
            results = [self._execute_alone(c) for c in commands]
        if self.ledger_error is not None:
            log.warning("ledger writable again: counting resumes from the PLC's counters")
            self.ledger_error = None
        self._account(commands, results)

    def _account(self, commands: list[Command], results: list[Result]) -> None:
        """Metrics and log lines for a committed batch."""
        self.metrics.write_batches.inc()
        if self.sync is not None and any(r.transactions or r.alerts for r in results):
            self.sync.rows_written()
        for command, result in zip(commands, results, strict=True):
            self._log_outcome(command, result)
            if result.transactions and is_reading(command):
                self.metrics.deltas.labels(command.point).inc()
            for tx in result.transactions:
                self.metrics.transactions.labels(tx["kind"]).inc()
                if tx["kind"] == "completion" and tx["work_center"]:
                    self.metrics.units.labels(tx["work_center"]).inc(float(tx["qty"]))
            for alert in result.alerts:
                self.metrics.alerts.labels(alert["kind"]).inc()
                log.warning("alert %s", alert_fields(alert, omit=("ts",)))

    def _log_outcome(self, command: Command, result: Result) -> None:
        """A refusal is a warning; a point's readings refused again (every poll, while a
        meter reads negative) are debug, until one of its readings is taken."""
        point = command.point if is_reading(command) else None
        if result.ok or result.duplicate:
            if point is not None and self._refused_points.pop(point, None) is not None:
                log.info("%s: readings taken again", point)
            return
        if point is not None and point in self._refused_points:
            log.debug("refused %s again: %s", type(command).__name__, result.error)
            return
        if point is not None:
            self._refused_points[point] = result.error or ""
        log.warning("refused %s: %s", type(command).__name__, result.error)

    def _execute_alone(self, command: Command) -> Result:
        assert self.ledger is not None
        try:
            return self.ledger.execute(command)
        except Exception as exc:
            log.exception(
                "INTERNAL ERROR: %s %s was not applied", type(command).__name__, command.key
            )
            return Result(ok=False, error=f"internal error: {exc}")

    def _ledger_failed(self, exc: sqlite3.Error, commands: list[Command]) -> None:
        """Disk full or I/O error: nothing was written, counters did not advance, so the
        PLC keeps the count. Readings are dropped (the next carries it); the rest waits."""
        self.metrics.write_errors.inc()
        cause = ledger_trouble(exc, self.db_path.parent)
        if self.ledger_error is None:
            log.error(
                "LEDGER NOT WRITABLE (%s): counters are not advancing; the PLCs keep "
                "counting and nothing is lost. %s",
                cause,
                what_to_do(exc, self.db_path.parent),
            )
        self.ledger_error = cause
        self._pending = [c for c in commands if c.key and not is_reading(c)][-10_000:]
        self._stop.wait(RETRY_S)

    def _command_for(self, event: Event) -> Command | None:
        if isinstance(event, Reading):
            return self._reading(event)
        if isinstance(event, Scan):
            return self._scan(event)
        if isinstance(event, DeviceStatus):
            return self._device_status(event)
        return None

    def _reading(self, reading: Reading) -> Command | None:
        state = self.devices.setdefault(reading.device, DeviceState())
        self.metrics.readings.labels(reading.device).inc()
        if state.first_point is None:
            state.first_point = reading.point
        if reading.point == state.first_point:  # once per poll, not once per point
            if state.last_reading_ts is not None:
                gap = (reading.ts - state.last_reading_ts).total_seconds()
                self.metrics.poll_interval.labels(reading.device).observe(max(gap, 0.0))
            state.last_reading_ts = reading.ts
        if not reading.ok:
            self.metrics.read_failures.labels(reading.device).inc()
        else:
            state.last_values[reading.point] = str(reading.value)
            if state.up is None:  # answering is being up, even before any status change
                state.up, state.since = True, reading.ts
                self.metrics.device_up.labels(reading.device).set(1)
        assert self.ledger is not None
        command = reading_command(reading, self.ledger.points)
        return None if isinstance(command, Ignored) else command

    def _scan(self, scan: Scan) -> Command:
        assert self.ledger is not None
        place = self._scan_place(scan.device)
        master = self.ledger.master
        uoms = {code: item.uom for code, item in master.items.items()}
        command = scan_command(scan, place, master.item_by_gtin(), uoms, next(self._scan_seq))
        if isinstance(command, ScanRejected):
            self.metrics.scans.labels(scan.device, "rejected").inc()
            log.warning("scan rejected at %s: %s (%r)", scan.device, command.reason, scan.data)
            return Notice(
                key="",
                ts=scan.ts,
                kind=command.kind,
                fields={"device": scan.device, "reason": command.reason, "data": scan.data[:200]},
            )
        self.metrics.scans.labels(scan.device, "accepted").inc()
        return command

    def _scan_place(self, device: str) -> ScanPlace | None:
        cfg = self.loaded.config
        wc_code = getattr(cfg.devices.get(device), "work_center", None)
        wc = cfg.work_centers.get(wc_code) if wc_code else None
        if wc is None or wc_code is None:
            return None
        return ScanPlace(wc_code, wc.location, wc.item, wc.order_prefix)

    def _device_status(self, status: DeviceStatus) -> Command | None:
        state = self.devices.setdefault(status.device, DeviceState())
        if state.up is (status.state == "up"):
            return None
        first = state.up is None
        state.up, state.since, state.reason = status.state == "up", status.ts, status.reason
        self.metrics.device_up.labels(status.device).set(1 if state.up else 0)
        if first and state.up:
            return None  # a device that simply answered at start-up is no news
        kind = "device_up" if state.up else "device_down"
        fields = {"device": status.device, "reason": status.reason}
        return Notice(key="", ts=status.ts, kind=kind, fields=fields)


# Below this much free space a failing write is the disk being full, whatever SQLite calls
# it (a -shm or WAL file that cannot grow can read as an I/O error).
FULL_BELOW_BYTES = 1 << 20


def disk_full(exc: sqlite3.Error, data_dir: Path) -> bool:
    """SQLite's SQLITE_FULL (the ledger never sets a page limit: ENOSPC), or an I/O error
    on a filesystem with next to no space left."""
    if is_disk_full(exc):
        return True
    if (exc.sqlite_errorcode or 0) & 0xFF != sqlite3.SQLITE_IOERR:
        return False
    free = free_bytes(data_dir)
    return free is not None and free < FULL_BELOW_BYTES


def ledger_trouble(exc: sqlite3.Error, data_dir: Path) -> str:
    """What stops the ledger, named by its cause, for the log and /healthz."""
    if disk_full(exc, data_dir):
        free = free_bytes(data_dir)
        left = "" if free is None else f", {free:,} bytes free"
        return f"the disk is full: no space left on {data_dir}{left} ({exc})"
    return str(exc)


def what_to_do(exc: sqlite3.Error, data_dir: Path) -> str:
    """The advice for a ledger that cannot be written, by SQLite's primary error code."""
    code = (exc.sqlite_errorcode or 0) & 0xFF
    if disk_full(exc, data_dir):
        return f"Free disk space on {data_dir}."
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return (
            "Another process holds the ledger's write lock (a lineside command, a backup):"
            " let it finish."
        )
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN):
        return f"Check that {data_dir} is mounted read-write and belongs to the service user."
    if code == sqlite3.SQLITE_IOERR:
        return "An I/O error: the disk or SD card may be failing (see dmesg)."
    return f"Check the disk and the ledger in {data_dir}."

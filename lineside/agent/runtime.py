"""`lineside run`: drivers, interpretation, ledger and sync wired into one supervised process.

Threads: one per device (its driver's loop, restarted with backoff if it ever dies), one
ledger writer that turns events into commands and group-commits them, the sync threads,
and the health server. The main thread handles signals and the systemd watchdog.
"""

from __future__ import annotations

import itertools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineside import __version__
from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.commands import Command
from lineside.agent.config import LoadedConfig
from lineside.agent.handlers import Ledger
from lineside.agent.ledger.outbox_status import ledger_bytes, sync_status
from lineside.agent.ledger.queries import held_count
from lineside.agent.ledger.retention import retention_of
from lineside.agent.liveness import Loop, dead
from lineside.agent.liveness import problem as dead_thread
from lineside.agent.metrics import Metrics
from lineside.agent.sparkplug.checks import node_changed
from lineside.agent.sparkplug.live import LiveState
from lineside.agent.sync.service import Sync, SyncSetupError
from lineside.agent.writer import DeviceState, LedgerWriter
from lineside.clock import Clock, utc_now
from lineside.drivers.base import Backoff, DeviceStatus, Driver, Event, PollTime, Reading
from lineside.drivers.registry import DeviceSet, build_drivers

if TYPE_CHECKING:  # the node (and protobuf) is imported only when sparkplug: is on
    from lineside.agent.sparkplug.node import SparkplugNode

log = logging.getLogger("lineside.agent")
QUEUE_MAX = 50_000
DriverFactory = Callable[[dict[str, Any], Clock], DeviceSet]


RESTART_BACKOFF = Backoff(0.5, 30.0)  # a driver's loop that ended, started again


class Supervisor:
    """Runs one driver's loop in a thread; if it ever returns or raises, restarts it."""

    def __init__(self, driver: Driver, emit: Callable[[Event], None], clock: Clock) -> None:
        self.driver = driver
        self.emit = emit
        self.clock = clock
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"device-{driver.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        delays = RESTART_BACKOFF.delays()
        while not self.stop.is_set():
            try:
                self.driver.run(self.stop, self.emit)
            except Exception as exc:
                log.exception("device %s: driver crashed; restarting", self.driver.name)
                self.emit(
                    DeviceStatus(self.driver.name, "down", self.clock(), f"driver crashed: {exc}")
                )
            if self.stop.wait(next(delays)):
                return


class Agent(LedgerWriter):
    """The composition root of the daemon. Tests build it too, with their own clock."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock = utc_now,
        driver_factory: DriverFactory = build_drivers,
    ) -> None:
        self.loaded = loaded
        self.clock = clock
        self.driver_factory = driver_factory
        self.metrics = Metrics()
        self.events: queue.Queue[Event] = queue.Queue(QUEUE_MAX)
        self.devices: dict[str, DeviceState] = {}
        self.ledger: Ledger | None = None
        self.sync: Sync | None = None
        self.sparkplug: SparkplugNode | None = None
        self.ledger_error: str | None = None
        self.sync_error: str | None = None  # a sync that could not be started again
        self._pruned_seen = 0  # the sync's rows_pruned already counted in the metrics
        self.writer_heartbeat = time.monotonic()
        self._supervisors: list[Supervisor] = []
        self._device_set: DeviceSet | None = None
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._pending: list[Command] = []
        self._refused_points: dict[str, str] = {}  # the first refusal of each point's readings
        self._broker_lost_at: float | None = None
        self._scan_seq = itertools.count(1)

    @property
    def db_path(self) -> Path:  # type: ignore[override]
        return self.loaded.data_dir / LEDGER_FILE

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Open the ledger, start the writer, the devices and the sync. Returns at once."""
        self.ledger = open_ledger(self.loaded, self.clock)
        self.sync = Sync(self.loaded, self.ledger, self.db_path, clock=self.clock)
        self._writer = threading.Thread(target=self._write_loop, name="ledger-writer", daemon=True)
        self._writer.start()
        self.sync.start()  # takes the ledger's publisher lock before any device is polled
        self._start_sparkplug()
        self._start_devices()
        log.info(
            "lineside %s started: gateway %s, %d devices, ledger %s",
            __version__,
            self.loaded.config.gateway.id,
            len(self.loaded.config.devices),
            self.db_path,
        )

    def stop(self, timeout_s: float = 4.0) -> None:
        """Finish the current ledger transaction, give in-flight publishes a few seconds."""
        started = time.monotonic()
        deadline = started + timeout_s
        self._stop_sparkplug(timeout_s / 4)  # its NDEATH first, while the line still reads
        self._stop_devices(join_s=min(2.0, timeout_s / 2))
        self._stop.set()
        if self._writer is not None:
            self._writer.join(max(0.5, deadline - time.monotonic()))
        if self.sync is not None:
            self.sync.stop(max(0.5, deadline - time.monotonic() - 0.5))
        if self.ledger is not None:
            self.ledger.conn.close()
        log.info("stopped in %.1f s", time.monotonic() - started)

    def reload(self, loaded: LoadedConfig) -> None:
        """Apply a valid new config: devices restarted, points and master data replaced.

        Raises SyncSetupError before anything is changed when the new mqtt settings
        cannot be used (a file they name cannot be read): the old config keeps running.
        """
        assert self.ledger is not None and self.sync is not None
        gateway_changed = loaded.config.gateway != self.loaded.config.gateway
        if gateway_changed:
            log.warning("gateway section changed: restart lineside to apply it (kept the old)")
            gateway = self.loaded.config.gateway
            loaded = replace(loaded, config=loaded.config.model_copy(update={"gateway": gateway}))
        sync = None
        if loaded.config.mqtt != self.loaded.config.mqtt:
            sync = Sync(loaded, self.ledger, self.db_path, clock=self.clock)  # reads the files
        self._stop_devices()
        self.ledger.reconfigure(loaded.config)
        old, self.loaded = self.loaded, loaded
        if sync is not None:
            self._replace_sync(sync)
        elif self.sync is not None:
            self.sync.shared.retention = retention_of(loaded)  # the next round prunes by it
        if node_changed(old.config, loaded.config):
            self._stop_sparkplug()
            try:
                self._start_sparkplug()
            except SyncSetupError as exc:  # a file check_files passed became unreadable since
                log.error("sparkplug: not started with the new config: %s", exc)
        self._start_devices()
        log.info("config reloaded: %d devices", len(loaded.config.devices))

    def _replace_sync(self, sync: Sync) -> None:
        assert self.sync is not None
        self.sync.stop()
        self.sync, self._pruned_seen = sync, 0
        try:
            sync.start()
        except SyncSetupError as exc:  # the old threads hang on to the ledger's lock
            log.error("sync not restarted: %s", exc)
            self.sync_error = str(exc)

    def _start_sparkplug(self) -> None:
        if self.loaded.config.sparkplug is None:
            return
        from lineside.agent.sparkplug.node import SparkplugNode

        # reads its password and certificates now: SyncSetupError stops the start
        self.sparkplug = SparkplugNode(self.loaded, self.db_path, self.live_state, clock=self.clock)
        self.sparkplug.start()

    def _stop_sparkplug(self, timeout_s: float = 2.0) -> None:
        if self.sparkplug is not None:
            self.sparkplug.stop(timeout_s)
            self.sparkplug = None

    def live_state(self) -> LiveState:
        """For the Sparkplug node's thread: copies, as the writer keeps changing these."""
        devices = list(self.devices.items())
        values = {f"{name}.{p}": v for name, s in devices for p, v in dict(s.last_values).items()}
        return LiveState(
            values=values,
            devices_up={name: s.up for name, s in devices},
            broker_connected=self.sync is not None and self.sync.connected,
        )

    def _start_devices(self) -> None:
        self._device_set = self.driver_factory(dict(self.loaded.config.devices), self.clock)
        for name in self.loaded.config.devices:
            self.devices.setdefault(name, DeviceState())
        for gone in set(self.devices) - set(self.loaded.config.devices):
            del self.devices[gone]
        self._supervisors = [Supervisor(d, self.emit, self.clock) for d in self._device_set.drivers]
        for sup in self._supervisors:
            sup.start()

    def _stop_devices(self, join_s: float = 3.0) -> None:
        """Stop every driver loop; all are told at once, so the wait is the slowest one's."""
        for sup in self._supervisors:
            sup.stop.set()
        deadline = time.monotonic() + join_s
        for sup in self._supervisors:
            sup.thread.join(max(0.0, deadline - time.monotonic()))
            if sup.thread.is_alive():
                log.warning("device %s did not stop within %.1f s", sup.driver.name, join_s)
        self._supervisors = []
        if self._device_set is not None:
            self._device_set.close()
            self._device_set = None

    # -- events in ---------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Called from device threads. Readings are state: when the queue is full one may
        be dropped, as the next carries the counter on. Scans and status never are."""
        if isinstance(event, PollTime):  # a measure: counted here, never queued
            self.metrics.poll_seconds.labels(event.device).observe(event.seconds)
            if event.slow:
                self.metrics.slow_polls.labels(event.device).inc()
            return
        if isinstance(event, Reading):
            if not self._means_something(event):
                self._reading(event)  # shown in status and metrics; nothing to post
                return
            try:
                self.events.put_nowait(event)
            except queue.Full:
                self.metrics.dropped_readings.labels(event.device).inc()
            return
        self.events.put(event)

    def _means_something(self, reading: Reading) -> bool:
        """Only counter and meter points reach the ledger writer; the rest is for display."""
        ledger = self.ledger
        if ledger is None:
            return True
        ref = f"{reading.device}.{reading.point}"
        return ref in ledger.points.counters or ref in ledger.points.meters

    # -- health --------------------------------------------------------------------------
    def loops(self) -> list[Loop]:
        """Every thread of the agent that must run while it runs."""
        loops = [] if self._writer is None else [Loop(self._writer, self._stop.is_set)]
        loops += [Loop(sup.thread, sup.stop.is_set) for sup in self._supervisors]
        if self.sync is not None:
            loops += self.sync.loops()
        if self.sparkplug is not None:
            loops += self.sparkplug.loops()
        return loops

    def loop_problems(self) -> list[str]:
        """Threads that died and a writer that stopped coming round: what a restart cures.

        The systemd watchdog is fed only while this is empty.
        """
        problems = [dead_thread(name) for name in dead(self.loops())]
        if self.sync_error is not None:
            problems.append(f"sync not running: {self.sync_error}")
        writer = self._writer
        if writer is not None and writer.is_alive() and self._writer_stalled():
            problems.append("ledger writer loop stalled")
        return problems

    def _writer_stalled(self) -> bool:
        return time.monotonic() - self.writer_heartbeat > 10

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the ledger is writable, the loops live and the broker not gone long."""
        problems: list[str] = []
        now = time.monotonic()
        if self.ledger_error is not None:
            problems.append(f"ledger not writable: {self.ledger_error}")
        problems += self.loop_problems()
        connected = self.sync is not None and self.sync.connected
        if connected:
            self._broker_lost_at = None
        elif self._broker_lost_at is None:
            self._broker_lost_at = now
        grace = self.loaded.config.health.broker_down_after_s if self.loaded.config.health else 120
        broker_down_s = 0.0 if self._broker_lost_at is None else now - self._broker_lost_at
        if broker_down_s > grace:
            problems.append(f"broker unreachable for {broker_down_s:.0f} s")
        body: dict[str, Any] = {
            "ok": not problems,
            "problems": problems,
            "version": __version__,
            "broker": {"connected": connected, "down_s": round(broker_down_s, 1)},
            "disk": self.metrics.writes.rates(),
            "devices": {
                name: {
                    "up": s.up,
                    "since": s.since.isoformat() if s.since else None,
                    "reason": s.reason,
                    "last_values": s.last_values,
                }
                for name, s in sorted(self.devices.items())
            },
        }
        return not problems, body

    def refresh_gauges(self) -> dict[str, Any]:
        """Read-only figures from the ledger for metrics and STATUS= (no write, ever)."""
        assert self.ledger is not None
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5) as conn:
            status = sync_status(conn, self.clock())
            held = held_count(conn)
            size = ledger_bytes(conn)
        self.metrics.backlog.set(status.get("backlog", 0))
        self.metrics.oldest.set(status.get("oldest_unsent_age_s") or 0)
        self.metrics.held.set(held)
        self.metrics.account_disk(time.monotonic(), size)
        if self.sync is not None:
            counts = self.sync.counters()
            self.metrics.published.set(counts["messages_published"])
            self.metrics.pruned.inc(counts["rows_pruned"] - self._pruned_seen)
            self._pruned_seen = counts["rows_pruned"]
            self.metrics.broker_up.set(1 if self.sync.connected else 0)
        return {**status, "held": held}

"""The process around the Agent: signals, systemd notify and watchdog, health server."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from lineside.agent import logs
from lineside.agent.config import ConfigInvalid, LoadedConfig, load
from lineside.agent.health import HealthServer
from lineside.agent.notify import Notifier
from lineside.agent.runtime import Agent
from lineside.agent.sync.client import SyncSetupError

log = logging.getLogger("lineside.daemon")
STOP_BUDGET_S = 4.0  # systemd and the tests expect an exit within 5 s of SIGTERM


class StartupError(Exception):
    """The agent cannot start (bad certificate, unwritable ledger): exit 1 with this."""


def run(loaded: LoadedConfig, notifier: Notifier | None = None) -> int:
    return Daemon(loaded, notifier or Notifier()).run()


class Daemon:
    """The agent, its health server and the systemd conversation, for one process."""

    def __init__(self, loaded: LoadedConfig, notifier: Notifier) -> None:
        self.notifier = notifier
        self.agent = Agent(loaded)
        self.health: HealthServer | None = None
        self.stop = threading.Event()
        self.reload = threading.Event()
        self._reloader: threading.Thread | None = None
        # Held while a reload is applied and while stopping: a stop waits for the one
        # being applied, and a reload still being read when the stop comes is dropped.
        self._applying = threading.Lock()

    def run(self) -> int:
        cfg = self.agent.loaded.config
        logs.configure(cfg.log.format, cfg.log.level)
        try:
            self.agent.start()
            self._start_health()
        except (SyncSetupError, OSError) as exc:
            raise StartupError(str(exc)) from exc
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        self.notifier.ready(_status_line(self.agent))
        self._main_loop()
        self.notifier.stopping()
        log.info("stopping")
        with self._applying:
            if self.health is not None:
                self.health.stop()
            self.agent.stop(STOP_BUDGET_S)
        log.info("stopped")
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        (self.reload if signum == signal.SIGHUP else self.stop).set()

    def _start_health(self) -> None:
        health = self.agent.loaded.config.health
        if health is None:
            return
        self.health = HealthServer(health.listen, self.agent.health, self.agent.metrics.render)
        self.health.start()
        log.info("health on http://%s:%d/healthz", *self.health.address)

    def _main_loop(self) -> None:
        notifier, agent = self.notifier, self.agent
        tick = min(1.0, notifier.watchdog_s / 3) if notifier.watchdog_s else 1.0
        last_gauges = 0.0
        while not self.stop.wait(tick):
            if self.reload.is_set() and not self._reloading():
                self.reload.clear()  # a SIGHUP during a reload waits for it to end
                self._reloader = threading.Thread(
                    target=self._reload, name="config-reload", daemon=True
                )
                self._reloader.start()
            # the watchdog asks whether the loops live, not whether the broker does
            if self._loops_live():
                notifier.watchdog()
            if time.monotonic() - last_gauges > 5:
                last_gauges = time.monotonic()
                try:
                    agent.refresh_gauges()
                except Exception:  # figures for people must never stop the agent
                    log.debug("gauges not refreshed", exc_info=True)
                notifier.status(_status_line(agent))

    def _loops_live(self) -> bool:
        health_died = self.health is not None and self.health.loop().died
        return not health_died and not self.agent.loop_problems()

    def _reloading(self) -> bool:
        return self._reloader is not None and self._reloader.is_alive()

    def _reload(self) -> None:
        """On its own thread: reading a large config takes seconds, and the main loop must
        go on feeding the watchdog meanwhile."""
        self.notifier.reloading()
        try:
            loaded = self._read_config()
            if loaded is not None:
                with self._applying:
                    if not self.stop.is_set():
                        self._apply(loaded)
        except Exception:  # a bug in applying must not pass silently; the loops are watched
            log.exception("config reload failed")
        finally:
            if not self.stop.is_set():
                self.notifier.ready(_status_line(self.agent))

    def _read_config(self) -> LoadedConfig | None:
        try:
            return load(self.agent.loaded.path)
        except ConfigInvalid as exc:
            for error in exc.errors:
                log.error("reload refused: %s", error)
            log.error(
                "config reload refused (%d errors): still running the old one", len(exc.errors)
            )
            return None

    def _apply(self, loaded: LoadedConfig) -> None:
        old = self.agent.loaded.config
        self.agent.reload(loaded)
        new = self.agent.loaded.config
        if new.log != old.log:
            logs.configure(new.log.format, new.log.level)
        if new.health != old.health:
            if self.health is not None:
                self.health.stop()
                self.health = None
            try:
                self._start_health()
            except OSError as exc:
                log.error(
                    "health server not restarted on %s: %s",
                    new.health.listen if new.health else "-",
                    exc,
                )


def _status_line(agent: Agent) -> str:
    up = sum(1 for d in agent.devices.values() if d.up)
    broker = "connected" if agent.sync is not None and agent.sync.connected else "not connected"
    backlog = int(agent.metrics.backlog._value.get())
    return f"{up}/{len(agent.devices)} devices up, broker {broker}, backlog {backlog}"

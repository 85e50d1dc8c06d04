"""The process around the Agent: signals, systemd notify and watchdog, health server."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType

from lineside.agent import logs
from lineside.agent.config import ConfigInvalid, LinesideConfig, LoadedConfig, load
from lineside.agent.health import HealthServer
from lineside.agent.ledger.retention import archive_problems
from lineside.agent.notify import Notifier
from lineside.agent.runtime import Agent
from lineside.agent.sync.client import SyncSetupError, check_files

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
        """The new config, checked as `lineside check` does, files included; None (logged)
        when it is refused."""
        try:
            loaded = load(self.agent.loaded.path)
            errors = check_files(loaded) + archive_problems(loaded)
        except ConfigInvalid as exc:
            _refused(exc.errors)
            return None
        if errors:
            _refused(errors)
            return None
        return loaded

    def _apply(self, loaded: LoadedConfig) -> None:
        """All or nothing: what can fail (the new health address, the mqtt files) is tried
        before anything of the running config is changed."""
        old = self.agent.loaded.config
        moved = _health_listen(old) != _health_listen(loaded.config)
        health = None
        try:
            if moved:
                health = self._bound_health(loaded)
        except OSError as exc:
            _refused([loaded.error(("health", "listen"), _bind_failure(exc, old, loaded))])
            return
        try:
            self.agent.reload(loaded)
        except SyncSetupError as exc:
            if health is not None:
                health.stop()
            _refused([loaded.error(exc.key, str(exc))])
            return
        new = self.agent.loaded.config
        if new.log != old.log:
            logs.configure(new.log.format, new.log.level)
        if moved:  # broker_down_after_s needs nothing: health() reads it every time
            if self.health is not None:
                self.health.stop()
            self.health = health
            if health is not None:
                health.start()
                log.info("health on http://%s:%d/healthz", *health.address)

    def _bound_health(self, loaded: LoadedConfig) -> HealthServer | None:
        """A server bound to the new health.listen, not serving yet (None: no health)."""
        if loaded.config.health is None:
            return None
        server = HealthServer(
            loaded.config.health.listen, self.agent.health, self.agent.metrics.render
        )
        server.bind()
        return server


def _health_listen(config: LinesideConfig) -> str | None:
    return None if config.health is None else config.health.listen


def _refused(errors: Sequence[object]) -> None:
    for error in errors:
        log.error("reload refused: %s", error)
    log.error("config reload refused (%d errors): still running the old one", len(errors))


def _bind_failure(exc: OSError, old: LinesideConfig, loaded: LoadedConfig) -> str:
    new = loaded.config.health
    assert new is not None
    message = f"cannot listen on {new.listen}: {exc.strerror or exc}"
    if (
        old.health is not None
        and old.health.listen.rpartition(":")[2] == new.listen.rpartition(":")[2]
    ):
        message += f" (the running {old.health.listen} holds the port: restart lineside to move it)"
    return message


def _status_line(agent: Agent) -> str:
    up = sum(1 for d in agent.devices.values() if d.up)
    broker = "connected" if agent.sync is not None and agent.sync.connected else "not connected"
    backlog = int(agent.metrics.backlog._value.get())
    return f"{up}/{len(agent.devices)} devices up, broker {broker}, backlog {backlog}"

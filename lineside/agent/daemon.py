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
    cfg = loaded.config
    logs.configure(cfg.log.format, cfg.log.level)
    notifier = notifier or Notifier()
    agent = Agent(loaded)
    try:
        agent.start()
    except (SyncSetupError, OSError) as exc:
        raise StartupError(str(exc)) from exc
    health = None
    if cfg.health is not None:
        health = HealthServer(cfg.health.listen, agent.health, agent.metrics.render)
        health.start()
        log.info("health on http://%s:%d/healthz", *health.address)
    stop, reload = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        (reload if signum == signal.SIGHUP else stop).set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    notifier.ready(_status_line(agent))
    _main_loop(agent, notifier, stop, reload)
    notifier.stopping()
    log.info("stopping")
    if health is not None:
        health.stop()
    agent.stop(STOP_BUDGET_S)
    log.info("stopped")
    return 0


def _main_loop(
    agent: Agent, notifier: Notifier, stop: threading.Event, reload: threading.Event
) -> None:
    tick = min(1.0, notifier.watchdog_s / 3) if notifier.watchdog_s else 1.0
    last_gauges = 0.0
    while not stop.wait(tick):
        if reload.is_set():
            reload.clear()
            _reload(agent, notifier)
        healthy, _ = agent.health()
        writer_ok = agent.writer_heartbeat > time.monotonic() - 10
        if writer_ok:  # the watchdog asks whether the loops live, not whether the broker does
            notifier.watchdog()
        if time.monotonic() - last_gauges > 5:
            last_gauges = time.monotonic()
            try:
                agent.refresh_gauges()
            except Exception:
                log.debug("gauges not refreshed", exc_info=True)
            notifier.status(_status_line(agent))
        if not healthy:
            log.debug("unhealthy: %s", agent.health()[1]["problems"])


def _reload(agent: Agent, notifier: Notifier) -> None:
    notifier.reloading()
    try:
        loaded = load(agent.loaded.path)
    except ConfigInvalid as exc:
        for error in exc.errors:
            log.error("reload refused: %s", error)
        log.error("config reload refused (%d errors): still running the old one", len(exc.errors))
    else:
        agent.reload(loaded)
    notifier.ready(_status_line(agent))


def _status_line(agent: Agent) -> str:
    up = sum(1 for d in agent.devices.values() if d.up)
    broker = "connected" if agent.sync is not None and agent.sync.connected else "not connected"
    backlog = int(agent.metrics.backlog._value.get())
    return f"{up}/{len(agent.devices)} devices up, broker {broker}, backlog {backlog}"

"""The gap scan: every replay.scan_s, what the database holds decides each gateway's gaps
(gaps.plan), and the replay requests to send.

Every consumer of the group scans, for its own metrics; the one that holds the scan's
advisory lock also records the new contiguous seqs and the requests before it sends them,
so that two consumers never ask a gateway for the same range.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from lineside.agent.sync.payloads import Topics
from lineside.central.config import CentralConfig
from lineside.central.gaps import Plan, new_gaps, plan
from lineside.central.metrics import CentralMetrics
from lineside.central.store import record_plans, scan, want_probe
from lineside.drivers.base import Backoff

log = logging.getLogger("lineside.central")


class Scanner:
    def __init__(
        self,
        config: CentralConfig,
        name: str,
        metrics: CentralMetrics,
        publish: Callable[[str, bytes], None],
    ) -> None:
        self.config = config
        self.name = name
        self.metrics = metrics
        self.publish = publish
        self._probe = threading.Event()
        self._wake = threading.Event()
        self._last: dict[tuple[str, str], Plan] = {}

    def probe_all(self) -> None:
        """Ask every gateway for what followed its newest seq (the link to the broker is new:
        messages may have been lost on the way)."""
        self._probe.set()
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        conn: psycopg.Connection[Any] | None = None
        failures = 0
        every = float(self.config.replay.scan_s)
        while not stop.is_set():
            try:
                if conn is None or conn.closed:
                    pg = self.config.postgres
                    conn = psycopg.connect(pg.dsn, connect_timeout=pg.connect_timeout_s,
                                           application_name="lineside central scan")
                    # The scan's per-gateway index lookups take milliseconds; the planner's
                    # estimate for them is high enough to have them JIT-compiled, which takes
                    # far longer than the lookups.
                    conn.execute("SET jit = off")
                    conn.commit()
                self.once(conn)
                failures = 0
            except psycopg.Error as exc:
                failures += 1
                if failures == 1:
                    log.warning("gap scan failed, retrying: %s", str(exc).strip())
                if conn is not None:
                    conn.close()
                conn = None
            if failures:
                self._wake.wait(Backoff(2 * every, 30.0, jitter=0.1).delay(failures))
            else:
                self._wake.wait(every * random.uniform(0.9, 1.1))
            self._wake.clear()
        if conn is not None:
            conn.close()

    def once(self, conn: psycopg.Connection[Any]) -> None:
        """One scan; sends the requests it decided on."""
        if self._probe.is_set():
            self._probe.clear()
            want_probe(conn)
        found = scan(conn)
        r = self.config.replay
        plans = {
            key: plan(seqs, found.now, float(r.grace_s), float(r.retry_s), r.max_messages,
                      r.from_start)
            for key, seqs in found.gateways.items()
        }
        self._observe(plans)
        if not found.locked:
            conn.rollback()
            return
        contiguous = {
            k: p.contiguous
            for k, p in plans.items()
            if p.contiguous is not None and p.contiguous != found.gateways[k].contiguous
        }
        requests = {k: p.request for k, p in plans.items() if p.request is not None}
        sent = record_plans(conn, contiguous, requests, self.name)
        prefix = self.config.mqtt.topic_prefix
        for (site, gateway), (request_id, first, last) in sent.items():
            body: dict[str, Any] = {"request_id": request_id, "from_seq": first}
            reason = "probe" if last is None else "gap"
            if last is not None:
                body["to_seq"] = last
            log.info(
                "asking %s/%s for a replay of seq %d..%s (%s)",
                site, gateway, first, "" if last is None else last, reason,
            )
            self.metrics.requests.labels(reason).inc()
            topic = Topics(prefix, site, gateway).cmd("replay")
            self.publish(topic, json.dumps(body, separators=(",", ":")).encode())

    def _observe(self, plans: dict[tuple[str, str], Plan]) -> None:
        for (site, gateway), p in plans.items():
            before = self._last.get((site, gateway))
            for first, last in new_gaps(before.missing if before else (), p.missing):
                self.metrics.gaps.inc()
                log.warning("%s/%s: seq %d..%d missing", site, gateway, first, last)
            self.metrics.missing.labels(site, gateway).set(p.missing_seqs)
        self._last = plans

"""`lineside central`'s Prometheus metrics, in a registry of its own (docs/central.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class CentralMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "lineside_central_messages",
            "Messages written to PostgreSQL, by topic kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.transactions = Counter(
            "lineside_central_transactions", "Transactions new to the database", registry=r
        )
        self.duplicates = Counter(
            "lineside_central_duplicates",
            "Transactions received again and dropped (already in the database)",
            registry=r,
        )
        self.replayed = Counter(
            "lineside_central_replayed_messages",
            "Messages new to the database that came as a replay (they filled a gap)",
            registry=r,
        )
        self.commits = Counter("lineside_central_commits", "Database transactions", registry=r)
        self.write_errors = Counter(
            "lineside_central_write_errors", "Writes that failed and were tried again", registry=r
        )
        self.write_seconds = Histogram(
            "lineside_central_write_seconds",
            "Time to write and commit one batch",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.lag = Gauge(
            "lineside_central_lag_seconds",
            "Age of the oldest message received and not yet committed (0: none waiting)",
            registry=r,
        )
        self.gaps = Counter(
            "lineside_central_gaps", "Gaps in a gateway's seqs found by this process", registry=r
        )
        self.missing = Gauge(
            "lineside_central_missing_seqs",
            "Seqs missing past the grace period, per gateway",
            ["site", "gateway"],
            registry=r,
        )
        self.requests = Counter(
            "lineside_central_replay_requests",
            "Replay requests sent, by reason (gap, probe)",
            ["reason"],
            registry=r,
        )
        self.not_held = Counter(
            "lineside_central_not_held_seqs",
            "Seqs a gateway answered it no longer holds (lost for good)",
            registry=r,
        )
        self.broker_up = Gauge(
            "lineside_central_broker_connected", "1 while connected to the broker", registry=r
        )
        self.database_up = Gauge(
            "lineside_central_database_connected", "1 while PostgreSQL answers", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

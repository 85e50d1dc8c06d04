"""`lineside central`'s Prometheus metrics, in a registry of its own (docs/central.md)."""

from __future__ import annotations

from lineside.agent.metrics import Registry


class CentralMetrics(Registry):
    def __init__(self) -> None:
        super().__init__()
        self.messages = self.counter(
            "lineside_central_messages",
            "Messages written to PostgreSQL, by topic kind and outcome",
            labels=("kind", "outcome"),
        )
        self.transactions = self.counter(
            "lineside_central_transactions", "Transactions new to the database"
        )
        self.duplicates = self.counter(
            "lineside_central_duplicates",
            "Transactions received again and dropped (already in the database)",
        )
        self.replayed = self.counter(
            "lineside_central_replayed_messages",
            "Messages new to the database that came as a replay (they filled a gap)",
        )
        self.commits = self.counter("lineside_central_commits", "Database transactions")
        self.write_errors = self.counter(
            "lineside_central_write_errors", "Writes that failed and were tried again"
        )
        self.write_seconds = self.histogram(
            "lineside_central_write_seconds",
            "Time to write and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.lag = self.gauge(
            "lineside_central_lag_seconds",
            "Age of the oldest message received and not yet committed (0: none waiting)",
        )
        self.gaps = self.counter(
            "lineside_central_gaps", "Gaps in a gateway's seqs found by this process"
        )
        self.missing = self.gauge(
            "lineside_central_missing_seqs",
            "Seqs missing past the grace period, per gateway",
            labels=("site", "gateway"),
        )
        self.requests = self.counter(
            "lineside_central_replay_requests",
            "Replay requests sent, by reason (gap, probe)",
            labels=("reason",),
        )
        self.not_held = self.counter(
            "lineside_central_not_held_seqs",
            "Seqs a gateway answered it no longer holds (lost for good)",
        )
        self.broker_up = self.gauge(
            "lineside_central_broker_connected", "1 while connected to the broker"
        )
        self.database_up = self.gauge(
            "lineside_central_database_connected", "1 while PostgreSQL answers"
        )

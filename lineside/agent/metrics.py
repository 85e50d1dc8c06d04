"""Prometheus metrics in a registry of the agent's own (no module-level global registry)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lineside.agent.diskuse import WriteAccount, process_written_bytes


class Registry:
    """One process's registry and the families in it, rendered for /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry)

    def histogram(
        self, name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Histogram:
        return Histogram(name, doc, labels, registry=self.registry, buckets=buckets)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Metrics(Registry):
    """The agent's metrics (docs/operations.md)."""

    def __init__(self) -> None:
        super().__init__()
        self.readings = self.counter("lineside_readings", "Readings received", labels=("device",))
        self.read_failures = self.counter(
            "lineside_read_failures", "Failed reads (no value)", labels=("device",)
        )
        self.dropped_readings = self.counter(
            "lineside_readings_dropped",
            "Readings dropped: the events queue was full (the next carries the counter on)",
            labels=("device",),
        )
        self.scans = self.counter("lineside_scans", "Barcodes read", labels=("device", "result"))
        self.deltas = self.counter(
            "lineside_counter_deltas", "Counter and meter changes that posted", labels=("point",)
        )
        self.units = self.counter(
            "lineside_units_backflushed", "Finished units reported", labels=("work_center",)
        )
        self.transactions = self.counter(
            "lineside_transactions", "Ledger transactions posted", labels=("kind",)
        )
        self.alerts = self.counter("lineside_alerts", "Alerts raised", labels=("kind",))
        self.held = self.gauge("lineside_held_events", "Events waiting (held)")
        self.backlog = self.gauge("lineside_outbox_backlog", "Outbox rows not yet acknowledged")
        self.oldest = self.gauge(
            "lineside_outbox_oldest_age_seconds", "Age of the oldest unacknowledged outbox row"
        )
        self.published = self.gauge("lineside_published_messages", "MQTT messages acknowledged")
        self.broker_up = self.gauge("lineside_broker_connected", "1 while connected to the broker")
        self.device_up = self.gauge(
            "lineside_device_up", "1 while the device answers", labels=("device",)
        )
        self.poll_interval = self.histogram(
            "lineside_reading_interval_seconds",
            "Time between two readings of a device",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            labels=("device",),
        )
        self.poll_seconds = self.histogram(
            "lineside_poll_seconds",
            "How long one whole poll of a Modbus device took",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            labels=("device",),
        )
        self.slow_polls = self.counter(
            "lineside_slow_polls", "Polls that took longer than poll_ms", labels=("device",)
        )
        self.ledger_bytes = self.gauge("lineside_ledger_bytes", "Ledger size on disk")
        self.disk_written = self.gauge(
            "lineside_disk_written_bytes",
            "Bytes this process has written to storage since it started (/proc/self/io)",
        )
        self.writes = WriteAccount()
        self.pruned = self.counter(
            "lineside_pruned_rows", "Journal rows and request ids pruned by retention"
        )
        self.write_batches = self.counter("lineside_ledger_batches", "Ledger write transactions")
        self.write_errors = self.counter(
            "lineside_ledger_write_errors", "Ledger writes that failed (disk full, I/O)"
        )

    def account_disk(self, at: float, ledger: int) -> None:
        """The write gauges, and a sample of the recent write and growth rates."""
        written = process_written_bytes()
        self.ledger_bytes.set(ledger)
        if written is not None:
            self.disk_written.set(written)
        self.writes.sample(at, written, ledger)

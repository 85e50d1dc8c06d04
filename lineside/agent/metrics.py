"""Prometheus metrics in a registry of the agent's own (no module-level global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.readings = Counter("lineside_readings", "Readings received", ["device"], registry=r)
        self.read_failures = Counter(
            "lineside_read_failures", "Failed reads (no value)", ["device"], registry=r
        )
        self.dropped_readings = Counter(
            "lineside_readings_dropped",
            "Readings dropped: the events queue was full (the next carries the counter on)",
            ["device"],
            registry=r,
        )
        self.scans = Counter("lineside_scans", "Barcodes read", ["device", "result"], registry=r)
        self.deltas = Counter(
            "lineside_counter_deltas",
            "Counter and meter changes that posted",
            ["point"],
            registry=r,
        )
        self.units = Counter(
            "lineside_units_backflushed", "Finished units reported", ["work_center"], registry=r
        )
        self.transactions = Counter(
            "lineside_transactions", "Ledger transactions posted", ["kind"], registry=r
        )
        self.alerts = Counter("lineside_alerts", "Alerts raised", ["kind"], registry=r)
        self.held = Gauge("lineside_held_events", "Events waiting (held)", registry=r)
        self.backlog = Gauge(
            "lineside_outbox_backlog", "Outbox rows not yet acknowledged", registry=r
        )
        self.oldest = Gauge(
            "lineside_outbox_oldest_age_seconds",
            "Age of the oldest unacknowledged outbox row",
            registry=r,
        )
        self.published = Gauge(
            "lineside_published_messages", "MQTT messages acknowledged", registry=r
        )
        self.broker_up = Gauge(
            "lineside_broker_connected", "1 while connected to the broker", registry=r
        )
        self.device_up = Gauge(
            "lineside_device_up", "1 while the device answers", ["device"], registry=r
        )
        self.poll_interval = Histogram(
            "lineside_reading_interval_seconds",
            "Time between two readings of a device",
            ["device"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.poll_seconds = Histogram(
            "lineside_poll_seconds",
            "How long one whole poll of a Modbus device took",
            ["device"],
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
        )
        self.slow_polls = Counter(
            "lineside_slow_polls", "Polls that took longer than poll_ms", ["device"], registry=r
        )
        self.ledger_bytes = Gauge("lineside_ledger_bytes", "Ledger size on disk", registry=r)
        self.write_batches = Counter(
            "lineside_ledger_batches", "Ledger write transactions", registry=r
        )
        self.write_errors = Counter(
            "lineside_ledger_write_errors", "Ledger writes that failed (disk full, I/O)", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

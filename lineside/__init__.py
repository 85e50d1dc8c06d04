"""lineside: a shop-floor edge agent that backflushes locally and syncs its ledger over MQTT."""

__version__ = "0.1.0"

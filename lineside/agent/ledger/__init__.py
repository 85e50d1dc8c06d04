"""The SQLite ledger: the only durable state and the only queue."""

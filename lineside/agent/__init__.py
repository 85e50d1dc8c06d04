"""The agent: configuration, the pure backflush engine, the ledger, sync, runtime and CLI."""

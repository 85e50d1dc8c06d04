"""Drivers know protocols, not products: they return readings and never touch the ledger."""

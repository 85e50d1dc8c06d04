"""Fault tests use the real mosquitto fixtures of the integration tests."""

from tests.integration.conftest import broker, broker_factory, mosquitto_bin

__all__ = ["broker", "broker_factory", "mosquitto_bin"]

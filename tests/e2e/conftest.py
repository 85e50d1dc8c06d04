"""The e2e tests use the same real mosquitto fixtures as the integration tests."""

from tests.integration.conftest import broker, broker_factory, mosquitto_bin

__all__ = ["broker", "broker_factory", "mosquitto_bin"]

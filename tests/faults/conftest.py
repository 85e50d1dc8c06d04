"""Fault tests use the real mosquitto and PostgreSQL fixtures of the integration tests,
and a PLC."""

from collections.abc import Iterator

import pytest

from lineside.simulators.plc import PlcSimulator, SimPoint
from tests.integration.conftest import (
    broker,
    broker_factory,
    mosquitto_bin,
    pg_dsn,
    postgres,
)

__all__ = ["broker", "broker_factory", "mosquitto_bin", "pg_dsn", "plc", "postgres"]


@pytest.fixture
def plc() -> Iterator[PlcSimulator]:
    """The line's PLC (tests/faults/agent_process.py LINE), both counters at 0."""
    sim = PlcSimulator(
        {1: {"good": SimPoint(10, "uint32", value=0), "scrap": SimPoint(12, "uint16", value=0)}},
        port=0,
    )
    sim.start()
    yield sim
    sim.stop()

"""Fixtures for the sync tests: a real mosquitto per test, TLS material, and gateway configs.

Without mosquitto the broker tests are skipped with the install hint, except where
LINESIDE_REQUIRE_BROKER=1 (CI), where they fail: CI never skips a broker test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lineside.agent.config import LoadedConfig, load
from tests.broker import INSTALL_HINT, Broker, TlsMaterial, find_mosquitto, make_tls_material
from tests.conftest import write_config
from tests.integration.libmodbus import build_server
from tests.pg import INSTALL_HINT as PG_HINT
from tests.pg import Postgres, find_bin_dir


def need(what: str | None, hint: str) -> str:
    """what, or skip with hint; in CI (LINESIDE_REQUIRE_BROKER=1) fail instead."""
    if what is not None:
        return what
    if os.environ.get("LINESIDE_REQUIRE_BROKER") == "1":
        pytest.fail(f"{hint} (LINESIDE_REQUIRE_BROKER=1: broker tests may not be skipped)")
    pytest.skip(hint)


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    return need(find_mosquitto(), INSTALL_HINT)


@pytest.fixture(scope="session")
def libmodbus_server_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The libmodbus test server, compiled once per session; missing tools fail, never skip."""
    return build_server(tmp_path_factory.mktemp("libmodbus"))


@pytest.fixture
def broker_factory(
    mosquitto_bin: str, tmp_path: Path
) -> Iterator[Callable[..., Broker]]:
    """Make and start brokers (Broker(**kwargs)); all are stopped at teardown."""
    made: list[Broker] = []

    def make(**kwargs: Any) -> Broker:
        broker = Broker(tmp_path / f"broker{len(made)}", executable=mosquitto_bin, **kwargs)
        made.append(broker)
        broker.start()
        return broker

    yield make
    for broker in made:
        broker.stop(kill=True)


@pytest.fixture
def broker(broker_factory: Callable[..., Broker]) -> Broker:
    """A plain, anonymous mosquitto on a free loopback port."""
    return broker_factory()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL for the whole session (initdb in a temporary folder, a free port).

    Never skipped: lineside central is tested against the real thing or the run fails.
    """
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.fail(PG_HINT)
    server = Postgres(bin_dir).start()
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(postgres: Postgres) -> str:
    """A new, empty database on the session's PostgreSQL."""
    return postgres.create_database()


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    try:
        return make_tls_material(tmp_path_factory.mktemp("tls"))
    except FileNotFoundError as exc:
        return need(None, f"{exc} is needed to make test certificates")  # type: ignore[return-value]


MQTT_LINE = "  topic_prefix: lineside/v1\n"


@pytest.fixture
def sync_config(tmp_path: Path) -> Callable[..., LoadedConfig]:
    """The demo line's config with the mqtt section pointed at a test broker.

    make(port, **mqtt_keys): extra keys are written as YAML under mqtt (values as given).
    """

    def make(port: int, subdir: str = "gw", **mqtt_keys: Any) -> LoadedConfig:
        extra = "".join(f"  {k}: {_yaml(v)}\n" for k, v in mqtt_keys.items())
        path = write_config(
            tmp_path / subdir,
            **{"port: 18830\n": f"port: {port}\n", MQTT_LINE: MQTT_LINE + extra},
        )
        return load(path)

    return make


def _yaml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return f'"{value}"'
    return str(value)


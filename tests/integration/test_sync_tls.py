"""TLS with a CA, a client certificate and a password; clear failures; no secret in any log."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.commands import Receive
from lineside.agent.config import LoadedConfig
from lineside.agent.sync import Sync, SyncSetupError
from tests.broker import (
    Broker,
    BrokerTls,
    Consumer,
    TlsMaterial,
    find_passwd_tool,
    make_password_file,
    wait_until,
)
from tests.conftest import StepClock
from tests.integration.conftest import need

P = "lineside/v1/plant-a/press-3"
PASSWORD = "s3cr3t-Pa55-do-not-log"
pytestmark = pytest.mark.broker


@pytest.fixture
def tls_broker(
    broker_factory: Callable[..., Broker], tls_material: TlsMaterial, tmp_path: Path
) -> Broker:
    if find_passwd_tool() is None:
        need(None, "mosquitto_passwd is missing (it comes with the mosquitto package)")
    passwords = make_password_file(tmp_path / "broker.passwd", "press-3", PASSWORD)
    return broker_factory(tls=BrokerTls(
        cafile=tls_material.ca_cert, certfile=tls_material.server_cert,
        keyfile=tls_material.server_key, require_certificate=True, password_file=passwords,
    ))


def gateway_tls(m: TlsMaterial, **over: Any) -> dict[str, Any]:
    tls: dict[str, Any] = {"ca_file": m.ca_cert, "cert_file": m.client_cert,
                           "key_file": m.client_key}
    tls.update(over)
    return {k: v for k, v in tls.items() if v is not None}


def password_file(tmp_path: Path, text: str = PASSWORD) -> Path:
    path = tmp_path / "mqtt.password"
    path.write_text(f"{text}\n")  # a trailing newline, as editors leave it: stripped
    path.chmod(0o600)
    return path


def consumer_context(m: TlsMaterial) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(m.ca_cert))
    context.load_cert_chain(str(m.client_cert), str(m.client_key))
    return context


def test_mutual_tls_with_password_delivers_and_never_logs_the_secret(
    tls_broker: Broker,
    tls_material: TlsMaterial,
    sync_config: Callable[..., LoadedConfig],
    clock: StepClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = sync_config(tls_broker.port, username="press-3",
                         password_file=password_file(tmp_path),
                         tls=gateway_tls(tls_material))
    ledger = open_ledger(config, clock)
    consumer = Consumer(tls_broker.port, [f"{P}/tx"], tls=consumer_context(tls_material),
                        username="press-3", password=PASSWORD).start()
    sync = Sync(config, None, config.data_dir / LEDGER_FILE)
    sync.start()
    try:
        ledger.execute(Receive(key="r1", ts=clock(), item="BOLT-M8", qty=Decimal(5),
                               location="LINE-3"))
        wait_until(lambda: len(consumer.on(f"{P}/tx")) == 1, 15, "the transaction over TLS")
    finally:
        sync.stop(5)
        consumer.stop()
    assert json.loads(consumer.on(f"{P}/tx")[0])["transactions"][0]["qty"] == "5"
    assert "mqtts://127.0.0.1" in caplog.text  # it did log its connection...
    for record in caplog.records:  # ...but never the password, in any form
        assert PASSWORD not in record.getMessage()
        assert PASSWORD not in repr(record.args)
    assert PASSWORD not in repr(sync.settings)


def run_until_failed(config: LoadedConfig) -> str:
    sync = Sync(config, None, config.data_dir / LEDGER_FILE, reconnect_min_s=0.2)
    sync.start()
    try:
        wait_until(lambda: sync.last_error is not None, 20, "the connection to fail")
        assert not sync.connected
        return str(sync.last_error)
    finally:
        sync.stop(1)


def test_a_wrong_ca_fails_with_a_clear_message(
    tls_broker: Broker, tls_material: TlsMaterial, sync_config: Callable[..., LoadedConfig],
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    config = sync_config(tls_broker.port, username="press-3",
                         password_file=password_file(tmp_path),
                         tls=gateway_tls(tls_material, ca_file=tls_material.other_ca_cert))
    error = run_until_failed(config)
    assert "certificate" in error and "mqtt.tls.ca_file" in error, error
    assert error in caplog.text


def test_no_client_certificate_is_refused_with_a_clear_message(
    tls_broker: Broker, tls_material: TlsMaterial, sync_config: Callable[..., LoadedConfig],
    tmp_path: Path,
) -> None:
    config = sync_config(tls_broker.port, username="press-3",
                         password_file=password_file(tmp_path),
                         tls=gateway_tls(tls_material, cert_file=None, key_file=None))
    error = run_until_failed(config)
    assert "client certificate" in error and "mqtt.tls.cert_file" in error, error


def test_a_wrong_password_is_refused_clearly_and_not_logged(
    tls_broker: Broker, tls_material: TlsMaterial, sync_config: Callable[..., LoadedConfig],
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + PASSWORD
    config = sync_config(tls_broker.port, username="press-3",
                         password_file=password_file(tmp_path, wrong),
                         tls=gateway_tls(tls_material))
    error = run_until_failed(config)
    assert "refused" in error and "mqtt.password_file" in error, error
    assert wrong not in caplog.text


@pytest.mark.parametrize("key", ["cert_file", "key_file", "ca_file"])
def test_a_missing_certificate_or_key_stops_start_up_naming_the_file(
    tls_material: TlsMaterial, sync_config: Callable[..., LoadedConfig], tmp_path: Path,
    key: str,
) -> None:
    missing = tmp_path / f"missing-{key}.pem"
    config = sync_config(8883, tls=gateway_tls(tls_material, **{key: missing}))
    with pytest.raises(SyncSetupError) as raised:
        Sync(config, None, config.data_dir / LEDGER_FILE)
    assert str(missing) in str(raised.value) and f"mqtt.tls.{key}" in str(raised.value)


def test_a_key_that_does_not_match_stops_start_up(
    tls_material: TlsMaterial, sync_config: Callable[..., LoadedConfig], tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    config = sync_config(8883, tls=gateway_tls(tls_material, key_file=garbage))
    with pytest.raises(SyncSetupError, match=r"client certificate .*garbage\.key.*belong together"):
        Sync(config, None, config.data_dir / LEDGER_FILE)


def test_an_unreadable_password_file_stops_start_up(
    sync_config: Callable[..., LoadedConfig], tmp_path: Path
) -> None:
    config = sync_config(1883, username="press-3", password_file=tmp_path / "nope")
    with pytest.raises(SyncSetupError, match=r"password file .*nope \(mqtt.password_file\)"):
        Sync(config, None, config.data_dir / LEDGER_FILE)

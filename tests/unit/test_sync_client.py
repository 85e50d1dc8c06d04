"""MQTT client settings: secrets kept out of reprs, and connect failures a person can act on."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest

from lineside.agent.config import load
from lineside.agent.sync.client import (
    ClientSettings,
    SyncSetupError,
    explain,
    explain_refusal,
    settings_from,
)
from tests.conftest import write_config

PLAIN = ClientSettings("broker", 1883, "press-3", "3.1.1", 30)
TLS = ClientSettings("broker", 8883, "press-3", "5", 30, ssl_context=ssl.create_default_context())


def test_the_password_file_is_stripped_and_never_in_a_repr(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("  hunter2-secret \n")
    path = write_config(tmp_path, **{"  topic_prefix: lineside/v1\n":
                                     "  topic_prefix: lineside/v1\n  username: press-3\n"
                                     "  password_file: pw\n"})
    settings = settings_from(load(path))
    assert settings.password == "hunter2-secret" and settings.username == "press-3"
    assert "hunter2" not in repr(settings) and settings.client_id == "press-3"


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    path = write_config(tmp_path, **{"  topic_prefix: lineside/v1\n":
                                     "  topic_prefix: lineside/v1\n  password_file: pw\n"})
    with pytest.raises(SyncSetupError, match=r"password file .*pw \(mqtt.password_file\) is empty"):
        settings_from(load(path))


@pytest.mark.parametrize(
    ("settings", "error", "expected"),
    [
        (TLS, ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                                              "verify failed: unable to get local issuer"),
         "mqtt.tls.ca_file"),
        (TLS, "failed to receive on socket: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 "
              "alert certificate required", "set mqtt.tls.cert_file and mqtt.tls.key_file"),
        (TLS, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca", "signed by a CA"),
        (TLS, "EOF occurred in violation of protocol", "may require a client certificate"),
        (PLAIN, ConnectionRefusedError(111, "Connection refused"),
         "cannot connect to the broker at mqtt://broker:1883: Connection refused"),
        (TLS, "[SSL: WRONG_VERSION_NUMBER] wrong version number", "does not speak TLS"),
    ],
)
def test_connect_failures_name_what_to_check(
    settings: ClientSettings, error: BaseException | str, expected: str
) -> None:
    assert expected in explain(error, settings)


def test_a_refused_connection_points_at_the_credentials() -> None:
    assert "check mqtt.username and mqtt.password_file" in explain_refusal("Not authorized", PLAIN)
    assert "refused the connection: Server unavailable" in explain_refusal(
        "Server unavailable", PLAIN)


def test_the_first_paho_error_of_a_connection_is_kept_and_still_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from lineside.agent.sync.network import Link  # the connection's view of paho

    link = Link()
    logger = link.logger()
    logger.debug("Sending PUBLISH (d0, q1, r0, m1)")
    logger.error("failed to receive on socket: [Errno 104] Connection reset by peer")
    logger.error("a consequence")
    assert link.last_paho_error == (
        "failed to receive on socket: [Errno 104] Connection reset by peer"
    )
    assert [r.getMessage() for r in caplog.records if r.name == "lineside.sync.paho"][-2:] == [
        "failed to receive on socket: [Errno 104] Connection reset by peer",
        "a consequence",
    ]
    # A level changed later (a reload) reaches the connection's logger at once.
    paho = logging.getLogger("lineside.sync.paho")
    try:
        paho.setLevel(logging.INFO)
        assert not logger.isEnabledFor(logging.DEBUG)
        paho.setLevel(logging.DEBUG)
        assert logger.isEnabledFor(logging.DEBUG)
    finally:
        paho.setLevel(logging.NOTSET)

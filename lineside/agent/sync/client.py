"""paho-mqtt setup: protocol, persistent session, credentials, TLS, and readable connect errors.

Secrets (the password) are read here and handed to paho only: they are kept out of reprs
and never formatted into a log line.
"""

from __future__ import annotations

import grp
import logging
import ssl
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from lineside.agent.config import ConfigError, LoadedConfig, MqttConfig, TlsConfig
from lineside.agent.yamlsource import KeyPath, format_path

log = logging.getLogger("lineside.sync")
PAHO_LOGGER = "lineside.sync.paho"
# MQTT 5: how long the broker keeps our session (subscriptions, queued commands) while we
# are away. A week covers a long weekend without the line.
SESSION_EXPIRY_S = 7 * 24 * 3600


class SyncSetupError(Exception):
    """The MQTT settings cannot be used: an unreadable certificate, key or password file.

    Start-up stops with this message; it names the file and the config key, which key
    also holds as a key path (empty when no one key is to blame).
    """

    def __init__(self, message: str, key: KeyPath = ()) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class ClientSettings:
    host: str
    port: int
    client_id: str
    protocol: Literal["3.1.1", "5"]
    keepalive_s: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    client_certificate: bool = False

    @property
    def where(self) -> str:
        scheme = "mqtts" if self.ssl_context is not None else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"


class BrokerSettings(Protocol):
    """The keys a connection needs: the agent's mqtt: section, or lineside central's."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def protocol(self) -> Literal["3.1.1", "5"]: ...
    @property
    def keepalive_s(self) -> int: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password_file(self) -> Path | None: ...
    @property
    def tls(self) -> TlsConfig | None: ...


class ConfigFile(Protocol):
    """The file broker settings came from: relative file names are resolved against it."""

    @property
    def path(self) -> Path: ...
    def resolve(self, path: Path) -> Path: ...


def settings_from(
    loaded: LoadedConfig,
    client_id: str | None = None,
    *,
    section: MqttConfig | None = None,
    key: str = "mqtt",
) -> ClientSettings:
    """Client settings from the config, with every file read now (fail at start-up).

    section: the broker settings to use instead of the mqtt: section, named key in messages.
    """
    mqtt_cfg = loaded.config.mqtt if section is None else section
    return settings_for(loaded, mqtt_cfg, client_id or loaded.config.gateway.id, key)


def settings_for(
    source: ConfigFile, mqtt_cfg: BrokerSettings, client_id: str, key: str = "mqtt"
) -> ClientSettings:
    """Client settings from any broker section (key names it in messages) of any config
    file (lineside central's too), with every file read now."""
    password = None
    if mqtt_cfg.password_file is not None:
        password = read_password(source.resolve(mqtt_cfg.password_file), (key,))
        for warning in password_file_warnings(source, mqtt_cfg, key):
            log.warning("%s", warning)
    context = None
    if mqtt_cfg.tls is not None:
        context = ssl_context(mqtt_cfg, source, key)
    elif password is not None:
        log.warning(
            "%s: a password is configured without tls: it crosses the network in clear", key
        )
    return ClientSettings(
        host=mqtt_cfg.host,
        port=mqtt_cfg.port,
        client_id=client_id,
        protocol=mqtt_cfg.protocol,
        keepalive_s=mqtt_cfg.keepalive_s,
        username=mqtt_cfg.username,
        password=password,
        ssl_context=context,
        client_certificate=mqtt_cfg.tls is not None and mqtt_cfg.tls.cert_file is not None,
    )


def check_files(loaded: LoadedConfig) -> list[ConfigError]:
    """What `lineside check` and a reload find wrong with the files the broker sections
    name (mqtt, and sparkplug when it has a broker of its own): each must be readable, the
    password not empty, and the TLS context must build from the CA, certificate and key
    (PEM, the key belonging to the certificate).

    The same reads as at start-up, so that a config `check` passes also starts.
    """
    errors: list[ConfigError] = []
    for key, mqtt_cfg in broker_sections(loaded):
        try:
            if mqtt_cfg.password_file is not None:
                read_password(loaded.resolve(mqtt_cfg.password_file), (key,))
        except SyncSetupError as exc:
            errors.append(loaded.error(exc.key, str(exc)))
        try:
            if mqtt_cfg.tls is not None:
                ssl_context(mqtt_cfg, loaded, key)
        except SyncSetupError as exc:
            errors.append(loaded.error(exc.key, str(exc)))
    return errors


def broker_sections(loaded: LoadedConfig) -> list[tuple[str, MqttConfig]]:
    """Every broker the config connects to, with the key of the section that names it."""
    sections = [("mqtt", loaded.config.mqtt)]
    spb = loaded.config.sparkplug
    if spb is not None and spb.host is not None:
        sections.append(("sparkplug", sparkplug_broker(loaded)))
    return sections


def sparkplug_broker(loaded: LoadedConfig) -> MqttConfig:
    """The Sparkplug node's broker settings: its own host if given, else the mqtt: broker."""
    spb = loaded.config.sparkplug
    assert spb is not None
    if spb.host is None:
        return loaded.config.mqtt.model_copy(update={"keepalive_s": spb.keepalive_s})
    return MqttConfig(
        host=spb.host,
        port=spb.port or 1883,
        username=spb.username,
        password_file=spb.password_file,
        tls=spb.tls,
        keepalive_s=spb.keepalive_s,
    )


def file_warnings(
    loaded: LoadedConfig, mqtt_cfg: MqttConfig | None = None, key: str = "mqtt"
) -> list[str]:
    """A password file that others can read: every user (o+r), or a group other than the
    config file's own (the documented install gives both to root:lineside, 0640)."""
    return password_file_warnings(loaded, loaded.config.mqtt if mqtt_cfg is None else mqtt_cfg, key)


def password_file_warnings(source: ConfigFile, mqtt_cfg: BrokerSettings, key: str) -> list[str]:
    """file_warnings for any broker section of any config file."""
    if mqtt_cfg.password_file is None:
        return []
    path = source.resolve(mqtt_cfg.password_file)
    try:
        mode = path.stat()
        config_gid = source.path.stat().st_gid
    except OSError:
        return []  # an error of check_files
    perms = f"mode {stat.S_IMODE(mode.st_mode):04o}"
    fix = "chmod 0600 it, or 0640 with the config file's group"
    if mode.st_mode & stat.S_IROTH:
        return [f"{key}.password_file: {path} can be read by every user ({perms}): {fix}"]
    if mode.st_mode & stat.S_IRGRP and mode.st_gid != config_gid:
        group, config_group = _group_name(mode.st_gid), _group_name(config_gid)
        return [
            f"{key}.password_file: {path} can be read by group {group} ({perms}), not only by"
            f" the config file's group {config_group}: {fix}"
        ]
    return []


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def read_password(path: Path, section: KeyPath = ("mqtt",)) -> str:
    key = (*section, "password_file")
    where = format_path(key)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SyncSetupError(
            f"cannot read the MQTT password file {path} ({where}): {_reason(exc)}", key
        ) from None
    if not text:
        raise SyncSetupError(f"the MQTT password file {path} ({where}) is empty", key)
    return text


def ssl_context(cfg: BrokerSettings, loaded: ConfigFile, section: str = "mqtt") -> ssl.SSLContext:
    """A verifying TLS context: the CA (or the system's), and the client certificate if any."""
    tls = cfg.tls
    assert tls is not None
    ca_key: KeyPath = (section, "tls", "ca_file")
    cert_key: KeyPath = (section, "tls", "cert_file")
    key_key: KeyPath = (section, "tls", "key_file")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if tls.ca_file is not None:
        ca = _readable(loaded.resolve(tls.ca_file), "CA certificate", ca_key)
        try:
            context.load_verify_locations(cafile=str(ca))
        except ssl.SSLError as exc:
            raise SyncSetupError(
                f"the CA certificate {ca} ({format_path(ca_key)}) is not a PEM certificate: "
                f"{_reason(exc)}",
                ca_key,
            ) from None
    if tls.key_file is not None and tls.cert_file is None:
        raise SyncSetupError(
            f"{format_path(key_key)} is set without {format_path(cert_key)}", key_key
        )
    if tls.cert_file is not None:
        cert = _readable(loaded.resolve(tls.cert_file), "client certificate", cert_key)
        private = None
        if tls.key_file is not None:
            private = _readable(loaded.resolve(tls.key_file), "client key", key_key)
        try:
            context.load_cert_chain(str(cert), None if private is None else str(private))
        except (ssl.SSLError, OSError) as exc:
            names = f"{cert}" if private is None else f"{cert} with key {private}"
            raise SyncSetupError(
                f"cannot use the client certificate {names} ({section}.tls.cert_file/key_file):"
                f" not a PEM certificate and key that belong together ({_reason(exc)})",
                cert_key,
            ) from None
    if tls.insecure:
        # As paho's tls_insecure_set: the chain is still verified, the host name is not.
        context.check_hostname = False
    return context


def _readable(path: Path, what: str, key: KeyPath) -> Path:
    where = format_path(key)
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise SyncSetupError(
            f"cannot read the {what} {path} ({where}): {_reason(exc)}", key
        ) from None
    return path


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc)  # "[SSL: REASON] what happened (_ssl.c:…)": the reason alone says less
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def new_client(
    settings: ClientSettings,
    *,
    persistent: bool,
    will: tuple[str, bytes] | None = None,
    will_retain: bool = True,
    max_inflight: int = 20,
    logger: logging.Logger | None = None,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A fresh client; one per connection attempt, so nothing stale is re-sent behind our back.

    manual_ack: paho acknowledges a received message only when told (Client.ack).
    """
    v5 = settings.protocol == "5"
    kwargs: dict[str, Any] = {
        "callback_api_version": CallbackAPIVersion.VERSION2,
        "client_id": settings.client_id,
        "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        "reconnect_on_failure": False,
        "manual_ack": manual_ack,
    }
    if not v5:
        kwargs["clean_session"] = not persistent
    client = mqtt.Client(**kwargs)
    client.enable_logger(logger or logging.getLogger(PAHO_LOGGER))
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.ssl_context is not None:
        client.tls_set_context(settings.ssl_context)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=will_retain)
    client.max_inflight_messages_set(max_inflight)
    client.connect_timeout = 10.0
    return client


def start_connect(client: mqtt.Client, settings: ClientSettings, *, persistent: bool) -> None:
    """Open the socket (TLS handshake included) and send CONNECT; raises OSError/ssl errors."""
    if settings.protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            props.SessionExpiryInterval = SESSION_EXPIRY_S
        client.connect(
            settings.host,
            settings.port,
            settings.keepalive_s,
            clean_start=not persistent,
            properties=props,
        )
    else:
        client.connect(settings.host, settings.port, settings.keepalive_s)


def explain(error: BaseException | str, settings: ClientSettings) -> str:
    """A connect failure as a person can act on it: what failed and which key to check."""
    text = error if isinstance(error, str) else _reason(error) or type(error).__name__
    where = settings.where
    low = text.lower()
    if "certificate_verify_failed" in low or "certificate verify failed" in low:
        return (
            f"TLS: the broker's certificate at {where} was not accepted ({text});"
            " check mqtt.tls.ca_file and that mqtt.host matches the certificate"
        )
    if "certificate required" in low or "certificate_required" in low:
        return (
            f"TLS: the broker at {where} requires a client certificate ({text});"
            " set mqtt.tls.cert_file and mqtt.tls.key_file"
        )
    if any(k in low for k in ("unknown ca", "unknown_ca", "bad certificate", "bad_certificate")):
        return (
            f"TLS: the broker at {where} refused our client certificate ({text});"
            " check that mqtt.tls.cert_file is signed by a CA the broker trusts"
        )
    if settings.ssl_context is not None and ("eof occurred" in low or "unexpected eof" in low):
        # TLS 1.3: a broker that wants a client certificate may just close the connection.
        hint = (
            "it may not accept our client certificate (check mqtt.tls.cert_file and its CA)"
            if settings.client_certificate
            else "it may require a client certificate: set mqtt.tls.cert_file and key_file"
        )
        return f"TLS: the broker at {where} closed the connection ({text}); {hint}"
    if "wrong version number" in low or "record layer failure" in low:
        return f"TLS: {where} does not speak TLS on this port ({text}); check mqtt.port/mqtt.tls"
    return f"cannot connect to the broker at {where}: {text}"


def explain_refusal(reason: Any, settings: ClientSettings) -> str:
    """A CONNACK that refused us."""
    text = str(reason)
    low = text.lower()
    hint = ""
    if "authori" in low or "user name" in low or "password" in low:
        hint = "; check mqtt.username and mqtt.password_file"
    elif "identifier" in low:
        hint = "; check gateway.id (the client id)"
    return f"the broker at {settings.where} refused the connection: {text}{hint}"


def close_client(client: mqtt.Client) -> None:
    """Close the client's socket and its wake-up socket pair now.

    paho closes the pair only in __del__ or reinitialise(); closing it here keeps a
    gateway that reconnects for weeks from leaking file descriptors.
    """
    reset = getattr(client, "_reset_sockets", None)
    try:
        if callable(reset):
            reset()
        else:
            sock = client.socket()
            if sock is not None:
                sock.close()
    except OSError:
        pass

"""`lineside central`'s YAML file, validated as the agent's is: every error at once, with
file:line and the key path (docs/central.md lists every key)."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from lineside.agent.config import (
    ConfigInvalid,
    HealthConfig,
    LogConfig,
    Model,
    TlsConfig,
    from_pydantic,
    read_file,
    read_sections,
    topic_prefix,
)

DOCS = "docs/central.md"
# A shared-subscription group name is one topic level without wildcards (MQTT 5, 4.8.2).
GROUP = r"^[A-Za-z0-9_\-]+$"


class CentralMqttConfig(Model):
    """The agent's mqtt keys a consumer needs, and the consumer's own session."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    topic_prefix: str = "lineside/v1"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    client_id: str = Field(default_factory=lambda: f"lineside-central-{socket.gethostname()}")
    # How long the broker keeps this consumer's session (its share of the messages) while
    # it is away; 0: none, what is sent meanwhile goes to the group's other members.
    session_expiry_s: int = Field(default=3600, ge=0, le=7 * 24 * 3600)
    receive_max: int = Field(default=200, ge=1, le=65535)

    @property
    def protocol(self) -> Literal["5"]:
        return "5"  # shared subscriptions and reason codes: MQTT 5 only

    @field_validator("topic_prefix")
    @classmethod
    def _topic(cls, value: str) -> str:
        return topic_prefix(value)

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,128}", value):
            raise ValueError("use 1 to 128 letters, digits, '.', '-' and '_'")
        return value


class PostgresConfig(Model):
    dsn: str = Field(min_length=1)
    connect_timeout_s: int = Field(default=10, ge=1, le=600)


class ReplayConfig(Model):
    """When a missing seq is a gap, and how the consumer asks for it again."""

    grace_s: Decimal = Field(default=Decimal(10), ge=0, le=3600)
    retry_s: Decimal = Field(default=Decimal(30), gt=0, le=86_400)
    scan_s: Decimal = Field(default=Decimal(1), gt=0, le=3600)
    max_messages: int = Field(default=1000, ge=1, le=100_000)
    # A gateway's seqs start at 1: what came before the first seq seen is asked for too.
    from_start: bool = True


class CentralConfig(Model):
    mqtt: CentralMqttConfig = CentralMqttConfig()
    postgres: PostgresConfig
    group: str = Field(default="lineside-central", pattern=GROUP, max_length=64)
    replay: ReplayConfig = ReplayConfig()
    health: HealthConfig | None = None
    log: LogConfig = LogConfig()


@dataclass(frozen=True)
class LoadedCentral:
    config: CentralConfig
    path: Path

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (self.path.parent / path).resolve()


def load(path: str | Path) -> LoadedCentral:
    """Read and validate a central config; raises ConfigInvalid with every error found."""
    name = str(path)
    source, data, errors = read_sections(read_file(path), name)
    config: Any = None
    try:
        config = CentralConfig.model_validate(data)
    except ValidationError as exc:
        errors += [from_pydantic(name, source, e, docs=DOCS) for e in exc.errors()]
    if errors:
        errors.sort(key=lambda e: e.line)
        raise ConfigInvalid(errors)
    return LoadedCentral(config=config, path=Path(path).resolve())

"""The technician's YAML file, validated whole: every error at once, with file:line and key path."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)

from lineside.agent.config_checks import ENTRY_SECTIONS, check_references
from lineside.agent.config_counters import CountersConfig, ScrapReasons
from lineside.agent.config_currency import CurrencyConfig
from lineside.agent.inputs import check_quantity, gtin_check_digit
from lineside.agent.yamlsource import KeyPath, Refused, Source, format_path, line_of, parse
from lineside.drivers import registry
from lineside.drivers.base import DriverModel
from lineside.validation import UNKNOWN, describe

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
# What a counter or meter can make a second at most, unless configured: a drop that would
# be a rollover of more than this (per second since the last read) is a reset.
DEFAULT_MAX_RATE = Decimal(1000)
MAX_FILE_BYTES = 1024 * 1024  # some 12,000 items; parsing that takes seconds on a gateway
TOPIC_SAFE = r"^[A-Za-z0-9_\-]+$"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def _plain_path(value: object) -> object:
    """A path as the agent will use it: no NUL (the OS cannot take it), no ~ (which only a
    shell expands, and to another folder for each user: root's under sudo)."""
    if isinstance(value, str):
        if "\0" in value:
            raise ValueError("a path cannot contain a NUL character")
        if value.startswith("~"):
            raise ValueError(
                f"{value!r} starts with ~, which is not expanded: write the full path"
                " (or one relative to this file)"
            )
    return value


FilePath = Annotated[Path, BeforeValidator(_plain_path)]
OptionalPath = Annotated[Path | None, BeforeValidator(_plain_path)]


class GatewayConfig(Model):
    id: str = Field(pattern=TOPIC_SAFE, max_length=64)
    site: str = Field(pattern=TOPIC_SAFE, max_length=64)
    data_dir: FilePath = Path("./var")
    currency: CurrencyConfig = CurrencyConfig()


class TlsConfig(Model):
    ca_file: OptionalPath = None
    cert_file: OptionalPath = None
    key_file: OptionalPath = None
    insecure: bool = False


class MqttConfig(Model):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: OptionalPath = None
    tls: TlsConfig | None = None
    topic_prefix: str = "lineside/v1"
    protocol: Literal["3.1.1", "5"] = "3.1.1"

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_number(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float | Decimal) else value

    keepalive_s: int = Field(default=30, ge=5, le=3600)
    batch_max: int = Field(default=100, ge=1, le=10_000)
    inflight_max: int = Field(default=20, ge=1, le=1000)
    retention_days: Decimal = Field(default=Decimal(7), ge=0, le=3650)
    stock_interval_s: Decimal = Field(default=Decimal(5), ge=0, le=3600)

    @field_validator("topic_prefix")
    @classmethod
    def _topic(cls, value: str) -> str:
        return topic_prefix(value)


def topic_prefix(value: str) -> str:
    """An mqtt.topic_prefix as it may be: a plain topic path."""
    if not value or any(c in value for c in "+#") or value[0] == "/" or value[-1] == "/":
        raise ValueError("must be a plain topic path without +, # or leading/trailing /")
    return value


Quantity = Annotated[Decimal, AfterValidator(lambda value: check_quantity(value, ""))]
"""A decimal within the bound every quantity and price has (lineside.agent.inputs)."""


class ItemConfig(Model):
    uom: str = Field(min_length=1, max_length=16)
    decimals: int = Field(default=0, ge=0, le=9)
    cost: Quantity = Field(default=Decimal(0), ge=0, le=1_000_000_000)
    conversion_cost: Quantity = Field(default=Decimal(0), ge=0, le=1_000_000_000)
    phantom: bool = False
    gtin: str | None = None
    removal: Literal["fifo", "fefo"] = "fifo"
    min_shelf_life_days: Quantity | None = Field(default=None, ge=0, le=36_500)
    description: str = ""

    @field_validator("gtin")
    @classmethod
    def _gtin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = value.strip()
        if not re.fullmatch(r"[0-9]{8}|[0-9]{12}|[0-9]{13}|[0-9]{14}", digits):
            raise ValueError(f"GTIN '{value}' must be 8, 12, 13 or 14 digits")
        digits = digits.zfill(14)
        if gtin_check_digit(digits[:-1]) != int(digits[-1]):
            raise ValueError(f"GTIN '{value}' has a wrong check digit")
        return digits


class ComponentConfig(Model):
    item: str
    qty: Quantity = Field(gt=0, le=1_000_000_000)
    scrap_pct: Quantity = Field(default=Decimal(0), ge=0, le=1000)
    stage: str | None = None
    flush: Literal["standard", "measured"] = "standard"


class BomConfig(Model):
    per: Quantity = Field(default=Decimal(1), gt=0, le=1_000_000_000)
    components: list[ComponentConfig] = Field(min_length=1)


class WorkCenterConfig(Model):
    location: str = Field(pattern=NAME)
    item: str | None = None
    counters: CountersConfig = CountersConfig()
    stages: dict[str, str] = {}
    on_shortage: Literal["allow", "hold"] = "allow"
    max_delta: int = Field(default=100_000, ge=1, le=1_000_000_000)
    # units a second, at most
    max_rate: Quantity = Field(default=DEFAULT_MAX_RATE, gt=0, le=1_000_000_000)
    order_prefix: str | None = None


class MeterConfig(Model):
    point: str
    item: str
    work_center: str
    max_delta: Quantity = Field(default=Decimal(1_000_000), gt=0, le=1_000_000_000)
    # the item's units a second, at most
    max_rate: Quantity = Field(default=DEFAULT_MAX_RATE, gt=0, le=1_000_000_000)


HOST_PORT = r"^[^:\s]*:[0-9]{1,5}$"


class HealthConfig(Model):
    listen: str = Field(default="127.0.0.1:9750", pattern=HOST_PORT)
    broker_down_after_s: int = Field(default=120, ge=1, le=86_400)

    @field_validator("listen")
    @classmethod
    def _port(cls, value: str) -> str:
        port = int(value.rpartition(":")[2])
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is not a TCP port: use 1..65535")
        return value


class LogConfig(Model):
    format: Literal["keyvalue", "json"] = "keyvalue"
    level: Literal["debug", "info", "warning", "error"] = "info"


class LedgerConfig(Model):
    """How often the ledger writer commits re-readable readings, how long a posting window
    gathers them, and how long history is kept (docs/configuration.md#ledger)."""

    commit_interval_s: Decimal = Field(default=Decimal(5), ge=0, le=60)
    post_interval_s: Decimal = Field(default=Decimal(30), ge=0, le=3600)
    # 0 would prune a transaction the moment the broker took it, before anyone could ask
    # for a report of it: the least is 0.01 days (14.4 minutes).
    keep_days: Decimal = Field(default=Decimal(90), ge=Decimal("0.01"), le=36500)
    archive_dir: OptionalPath = None


def _registered(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # An entry is validated against the registry's union as it is when the file is
    # loaded (_entry_type), so that a driver registered later (a test's) is accepted.
    return value if isinstance(value, DriverModel) else handler(value)


if TYPE_CHECKING:
    DeviceConfig = DriverModel
else:
    DeviceConfig = Annotated[registry.device_union(), WrapValidator(_registered)]


class SparkplugConfig(Model):
    """The optional Sparkplug B 3.0 edge node: live state for SCADA, read-only, beside P/tx.

    Without host it connects to the mqtt: broker with mqtt's port, credentials, TLS and
    protocol; with host, only the connection keys given here apply.
    """

    group_id: str = Field(pattern=NAME, max_length=64)
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    primary_host_id: str | None = Field(default=None, pattern=NAME, max_length=64)
    interval_s: Decimal = Field(default=Decimal(1), ge=Decimal("0.05"), le=3600)
    stopped_after_s: Decimal = Field(default=Decimal(60), gt=0, le=86400)
    stock: list[str] = []


class LinesideConfig(Model):
    gateway: GatewayConfig
    mqtt: MqttConfig = MqttConfig()
    ledger: LedgerConfig = LedgerConfig()
    # Stock locations besides the work centers' own (stores, quarantine): receipts and
    # counts to any other location are refused.
    locations: list[Annotated[str, Field(pattern=NAME, max_length=128)]] = []
    items: dict[str, ItemConfig] = {}
    boms: dict[str, BomConfig] = {}
    work_centers: dict[str, WorkCenterConfig] = {}
    scrap_reasons: ScrapReasons = {}  # when set, the only reasons scrap may be reported with
    meters: dict[str, MeterConfig] = {}
    devices: dict[str, DeviceConfig] = {}
    health: HealthConfig | None = None
    log: LogConfig = LogConfig()
    sparkplug: SparkplugConfig | None = None


@dataclass(frozen=True)
class ConfigError:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class ConfigInvalid(Exception):
    """The config was refused whole; errors lists every reason."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class LoadedConfig:
    """A valid config and the file it came from (relative paths are resolved against it).

    name is the file as it was given, lines the line of each key path: for errors found
    after loading (the files the config names) in the same file:line form.
    """

    config: LinesideConfig
    path: Path
    warnings: tuple[str, ...] = ()
    name: str = ""
    lines: Mapping[KeyPath, int] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(
            self.name or str(self.path), line_of(self.lines, path), format_path(path), message
        )

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.config.gateway.data_dir)

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (self.path.parent / path).resolve()


def load(path: str | Path) -> LoadedConfig:
    """Read and validate a config file; raises ConfigInvalid with every error found."""
    return load_text(read_file(path), Path(path))


def read_file(path: str | Path) -> str:
    """A config file's text (at most MAX_FILE_BYTES and one more, for read_sections to
    refuse); ConfigInvalid when it cannot be read."""
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid([ConfigError(str(path), 1, "(file)", f"cannot read: {exc}")]) from None


def read_sections(
    text: str, name: str, *, empty_ok: bool = False
) -> tuple[Source, dict[str, Any], list[ConfigError]]:
    """A config file's YAML as a mapping of sections with its line numbers, and the errors
    found so far (duplicate keys); raises ConfigInvalid when it is too big, not YAML or
    not a mapping (an empty file is an empty mapping where empty_ok)."""
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8")) > MAX_FILE_BYTES:
        message = f"larger than {MAX_FILE_BYTES} bytes (1 MiB), the limit of a config file"
        raise ConfigInvalid([ConfigError(name, 1, "(file)", message)])
    try:
        source = parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        message = problem if isinstance(exc, Refused) else f"not valid YAML: {problem}"
        raise ConfigInvalid([ConfigError(name, line, "(yaml)", message)]) from None
    errors = [
        ConfigError(name, line, format_path(key), f"duplicate key (first given on line {first})")
        for key, line, first in source.duplicates
    ]
    if source.data is None and empty_ok:
        source.data = {}
    if not isinstance(source.data, dict):
        errors.append(ConfigError(name, 1, "(top level)", "must be a mapping of sections"))
        raise ConfigInvalid(errors)
    return source, _stringify_keys(source.data), errors


def load_text(text: str, file: Path) -> LoadedConfig:
    name = str(file)
    source, data, errors = read_sections(text, name)
    config, invalid = _validate_sections(name, source, data, errors)
    problems, warnings = check_references(config, invalid)
    errors += [ConfigError(name, source.line_of(p), format_path(p), m) for p, m in problems]
    if errors:
        errors.sort(key=lambda e: e.line)
        raise ConfigInvalid(errors)
    return LoadedConfig(
        config=config,
        path=file.resolve(),
        warnings=tuple(warnings),
        name=name,
        lines=source.lines,
    )


def _validate_sections(
    name: str, source: Source, data: dict[str, Any], errors: list[ConfigError]
) -> tuple[LinesideConfig, dict[str, set[str]]]:
    """Validate entry by entry so that one bad entry does not hide the others' errors.

    Returns a config of the valid parts and the names of entries that failed, which
    the cross-reference check treats as known (their own errors are already reported).
    """
    invalid: dict[str, set[str]] = {section: set() for section in ENTRY_SECTIONS}
    checked: dict[str, Any] = {}
    for key in data:
        if key not in LinesideConfig.model_fields:
            errors.append(ConfigError(name, source.line_of((key,)), key, _UNKNOWN))
    for field, info in LinesideConfig.model_fields.items():
        if field not in data:
            if info.is_required():
                errors.append(ConfigError(name, 1, field, "required section is missing"))
            continue
        raw = data[field]
        entry_type = _entry_type(field)
        if entry_type is not None and isinstance(raw, dict):
            good: dict[str, Any] = {}
            for entry, value in raw.items():
                try:
                    good[entry] = TypeAdapter(entry_type).validate_python(value)
                except ValidationError as exc:
                    invalid[field].add(entry)
                    errors.extend(
                        from_pydantic(name, source, e, (field, entry)) for e in exc.errors()
                    )
            checked[field] = good
            continue
        try:
            checked[field] = TypeAdapter(
                Any if info.annotation is None else info.annotation
            ).validate_python(raw)
        except ValidationError as exc:
            errors.extend(from_pydantic(name, source, e, (field,)) for e in exc.errors())
    if "gateway" not in checked:
        checked["gateway"] = GatewayConfig(id="invalid", site="invalid")
    return LinesideConfig.model_validate(checked), invalid


def _entry_type(field: str) -> Any:
    if field not in ENTRY_SECTIONS:
        return None
    return {
        "items": ItemConfig,
        "boms": BomConfig,
        "work_centers": WorkCenterConfig,
        "meters": MeterConfig,
        "devices": registry.device_union(),
    }[field]


_PATTERN_HELP = {
    TOPIC_SAFE: "use letters, digits, '-' and '_' only (it becomes an MQTT topic segment)",
    NAME: "use letters, digits, '.', '-' and '_' only, starting with a letter or digit",
    HOST_PORT: "write it as HOST:PORT, e.g. 127.0.0.1:9750",
}
_UNKNOWN = UNKNOWN.format(docs="docs/configuration.md")


def _stringify_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _stringify_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_keys(v) for v in value]
    return value


def from_pydantic(
    name: str, source: Source, err: Any, prefix: KeyPath = (), docs: str = "docs/configuration.md"
) -> ConfigError:
    """One pydantic error as file:line, key path and a message for a person; docs is where
    an unknown key's spelling can be checked."""
    where, message = describe(err, tags=registry.driver_names(), docs=docs, patterns=_PATTERN_HELP)
    loc = prefix + where
    return ConfigError(name, source.line_of(loc), format_path(loc), message)

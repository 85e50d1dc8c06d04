"""The config loader, driven by data: every file in tests/data/bad_configs must be refused.

Each bad config starts with one comment line per expected error::

    # expect: LINE: key.path: message-substring

The loader (and `lineside check`) must report exactly those errors: that line, that key
path, a message containing the substring, and nothing else.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lineside.agent import cli
from lineside.agent.config import ConfigInvalid, LoadedConfig, load, load_text

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "data" / "bad_configs"
EXAMPLE = REPO / "config" / "example.yaml"
DEMO = REPO / "config" / "demo.yaml"
EXPECT = re.compile(r"^# expect: (\d+): (.+?): (.+)$")


@dataclass(frozen=True)
class Expected:
    line: int
    path: str
    substring: str


def expectations(path: Path) -> list[Expected]:
    out = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.startswith("#"):
            break
        match = EXPECT.match(text)
        if match:
            out.append(Expected(int(match[1]), match[2], match[3].strip()))
    return out


CASES = sorted(BAD.glob("*.yaml"))


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 15
    for case in CASES:
        assert expectations(case), f"{case.name} has no '# expect:' line"


def _unmatched(expected: list[Expected], found: list[tuple[int, str, str]]) -> list[str]:
    """Pairs every expectation with one error; returns what is left over on either side."""
    left = list(found)
    missing = []
    for exp in expected:
        hit = next(
            (f for f in left if f[0] == exp.line and f[1] == exp.path and exp.substring in f[2]),
            None,
        )
        if hit is None:
            missing.append(f"missing: {exp.line}: {exp.path}: …{exp.substring}…")
        else:
            left.remove(hit)
    return missing + [f"unexpected: {line}: {path}: {message}" for line, path, message in left]


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_load_refuses_bad_config(case: Path) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load(case)
    errors = info.value.errors
    assert all(e.file == str(case) for e in errors)
    found = [(e.line, e.path, e.message) for e in errors]
    assert _unmatched(expectations(case), found) == []
    assert [e.line for e in errors] == sorted(e.line for e in errors), "errors in line order"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_check_command_refuses_bad_config(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "-c", str(case)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[-1].endswith("error(s): the config was refused")
    pattern = re.compile(rf"^{re.escape(str(case))}:(\d+): (.+?): (.*)$")
    found = []
    for line in lines[:-1]:
        match = pattern.match(line)
        assert match, f"not file:line: key.path: message: {line!r}"
        found.append((int(match[1]), match[2], match[3]))
    assert _unmatched(expectations(case), found) == []


@pytest.mark.parametrize("config", [EXAMPLE, DEMO], ids=["example", "demo"])
def test_shipped_configs_are_valid(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loaded = load(config)
    assert loaded.config.items and loaded.config.boms and loaded.config.devices
    assert loaded.warnings == ()
    if config == EXAMPLE and not Path("/etc/lineside/plant-ca.pem").exists():
        # Valid but for the gateway's files it names, which `check` reads.
        assert cli.main(["check", "-c", str(config)]) == 2
        out, err = capsys.readouterr()
        keys = re.findall(rf"^{re.escape(str(config))}:\d+: (\S+): ", err, re.MULTILINE)
        assert keys == [
            "mqtt.password_file",
            "mqtt.tls.ca_file",
            "sparkplug.password_file",
            "sparkplug.tls.ca_file",
        ], err
        return
    assert cli.main(["check", "-c", str(config)]) == 0
    out, err = capsys.readouterr()
    assert f"{config}: ok (" in out and err == ""


def test_example_uses_every_driver() -> None:
    drivers = {d.driver for d in load(EXAMPLE).config.devices.values()}
    assert drivers == {"modbus_tcp", "modbus_rtu", "serial_scanner", "ascii_meter"}


def test_check_reads_lineside_config_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINESIDE_CONFIG", str(DEMO))
    assert cli.main(["check"]) == 0
    assert "ok (" in capsys.readouterr().out
    monkeypatch.delenv("LINESIDE_CONFIG")
    assert cli.main(["check"]) == 2
    assert "no config" in capsys.readouterr().err


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load(tmp_path / "missing.yaml")
    [error] = info.value.errors
    assert (error.line, error.path) == (1, "(file)")
    assert "cannot read" in error.message


MINIMAL = "gateway: {id: press-3, site: plant-a, data_dir: DATA}\n"


@pytest.mark.parametrize(
    ("data_dir", "expected"),
    [("./var", "conf/var"), ("var", "conf/var"), ("../ledger", "ledger"), (".", "conf")],
)
def test_relative_data_dir_resolves_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: str, expected: str
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "line.yaml"
    path.write_text(MINIMAL.replace("DATA", data_dir))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load(Path("..") / "conf" / "line.yaml")
    assert loaded.data_dir == (tmp_path / expected).resolve()
    assert loaded.path == path.resolve()


def test_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(MINIMAL.replace("DATA", "/var/lib/lineside"))
    assert load(path).data_dir == Path("/var/lib/lineside")


def test_default_data_dir_is_var_next_to_the_config(tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    path.write_text("gateway: {id: press-3, site: plant-a}\n")
    assert load(path).data_dir == (tmp_path / "var").resolve()


def test_quantities_stay_exact_decimals() -> None:
    cfg = load(DEMO).config
    steel = cfg.boms["BRKT-100"].components[0]
    assert isinstance(steel.qty, Decimal) and steel.qty == Decimal("0.85")
    assert str(steel.qty) == "0.85"
    assert steel.scrap_pct == Decimal(3)
    assert str(cfg.items["BRKT-100"].cost) == "4.20"
    assert cfg.items["PAINT-9005"].decimals == 2
    assert str(cfg.boms["BRKT-100"].components[3].qty) == "0.02"
    assert cfg.boms["BRKT-100"].per == 1 and isinstance(cfg.boms["BRKT-100"].per, Decimal)


def test_tiny_and_long_decimals_are_not_floats(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace("DATA", "var")
        + "items:\n  A: {uom: kg, decimals: 9, cost: 0.1}\n  B: {uom: kg, cost: 0.000000001}\n"
        + "boms:\n  A:\n    per: 3\n    components:\n"
        + "      - {item: B, qty: 0.333333333}\n"
    )
    cfg = load_text(text, tmp_path / "line.yaml").config
    assert cfg.items["A"].cost == Decimal("0.1")
    assert cfg.items["B"].cost == Decimal("1E-9")
    assert cfg.boms["A"].components[0].qty == Decimal("0.333333333")


_TOO_MANY_DIGITS = (
    "has too many digits (at most 14 digits, at most 9 of them after the decimal point)"
)
_ABOVE_BOUND = "Input should be less than or equal to 1000000000"


@pytest.mark.parametrize(
    ("qty", "why"),
    [
        ("0.333333333333333333333333", f"0.333333333333333333333333 {_TOO_MANY_DIGITS}"),
        ("1e400", _ABOVE_BOUND),
        ("123456789012345", _ABOVE_BOUND),
    ],
)
def test_a_quantity_beyond_the_digits_bound_is_refused_with_its_line(
    tmp_path: Path, qty: str, why: str
) -> None:
    """Decimal's 28-digit context would round it (or fail) at the first backflush."""
    text = (
        MINIMAL.replace("DATA", "var")
        + "items:\n  A: {uom: kg}\n  B: {uom: kg}\n"
        + f"boms:\n  A:\n    components:\n      - {{item: B, qty: {qty}}}\n"
    )
    with pytest.raises(ConfigInvalid) as info:
        load_text(text, tmp_path / "line.yaml")
    assert [str(e).split(": ", 1)[1] for e in info.value.errors] == [
        f"boms.A.components[0].qty: {why}"
    ]
    assert info.value.errors[0].line == 8


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ('""', "empty"),
        ('"a\\0b"', "unprintable character U+0000"),
        ('"BOLT "', "starts or ends with a space"),
        ('"LІNE-3"', "mixes Cyrillic and Latin letters"),
    ],
)
def test_an_item_code_that_is_not_a_plain_code_is_refused(
    tmp_path: Path, code: str, why: str
) -> None:
    text = MINIMAL.replace("DATA", "var") + f"items:\n  {code}: {{uom: ea}}\n"
    with pytest.raises(ConfigInvalid) as info:
        load_text(text, tmp_path / "line.yaml")
    assert len(info.value.errors) == 1 and why in str(info.value.errors[0])
    assert info.value.errors[0].line == 3


def test_gtin_is_stored_as_fourteen_digits(tmp_path: Path) -> None:
    text = MINIMAL.replace("DATA", "var") + 'items:\n  A: {uom: ea, gtin: "4006381333931"}\n'
    assert load_text(text, tmp_path / "line.yaml").config.items["A"].gtin == "04006381333931"


def test_work_center_item_without_bom_is_a_warning_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(
        MINIMAL.replace("DATA", "var")
        + "items:\n  A: {uom: ea}\nwork_centers:\n  W: {location: L1, item: A}\n"
    )
    assert load(path).warnings == ("work_centers.W.item: A has no BOM; completions are held",)
    assert cli.main(["check", "-c", str(path)]) == 0
    assert "warning: work_centers.W.item: A has no BOM" in capsys.readouterr().err


# -- fuzzing: whatever a technician types, the answer is a config or ConfigInvalid --------

BASES: list[dict[str, Any]] = [
    yaml.safe_load(path.read_text(encoding="utf-8")) for path in (DEMO, EXAMPLE)
]
KNOWN_KEYS = [
    "gateway", "id", "site", "data_dir", "mqtt", "host", "port", "tls", "items", "uom",
    "decimals", "cost", "phantom", "gtin", "boms", "per", "components", "item", "qty",
    "scrap_pct", "stage", "flush", "work_centers", "location", "counters", "good", "scrap",
    "stages", "on_shortage", "max_delta", "meters", "point", "work_center", "devices",
    "driver", "points", "address", "type", "table", "word_order", "scale", "unit", "poll_ms",
    "baudrate", "parity", "terminator", "pattern", "health", "log", "level",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["modbus_tcp", "modbus_rtu", "serial_scanner", "ascii_meter", "plc3.good",
                      "BRKT-100", "STEEL-2MM", "PRESS-3", "hold", "measured", "uint16", "E"])
)  # fmt: skip
keys = st.sampled_from(KNOWN_KEYS) | st.text(min_size=1, max_size=8) | st.integers(0, 3)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)


def _containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every mapping and list in node, the root included."""
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        out.append(path)
        for key, value in node.items():
            out += _containers(value, (*path, key))
    elif isinstance(node, list):
        out.append(path)
        for index, value in enumerate(node):
            out += _containers(value, (*path, index))
    return out


CONTAINERS = [_containers(base) for base in BASES]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_edits_give_a_config_or_located_errors(data: st.DataObject) -> None:
    which = data.draw(st.sampled_from([0, 1]), label="base (0 demo, 1 example)")
    doc = copy.deepcopy(BASES[which])
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        where = data.draw(st.sampled_from(CONTAINERS[which]), label="where")
        node: Any = doc
        try:
            for part in where:
                node = node[part]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced this part of the tree
        value = data.draw(values, label="value")
        replace: bool = data.draw(st.booleans(), label="replace an existing entry")
        if isinstance(node, dict):
            if node and replace:
                node[data.draw(st.sampled_from(sorted(node, key=str)), label="key")] = value
            else:
                node[data.draw(keys, label="key")] = value
        elif isinstance(node, list):
            if node and replace:
                node[data.draw(st.integers(0, len(node) - 1), label="index")] = value
            else:
                node.append(value)
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    try:
        loaded = load_text(text, Path("/tmp/fuzz/line.yaml"))
    except ConfigInvalid as exc:
        assert exc.errors
        for error in exc.errors:
            assert error.line >= 1, error
            assert error.line <= text.count("\n") + 1, error
            assert isinstance(error.path, str) and error.path, error
            assert error.message, error
    else:
        assert isinstance(loaded, LoadedConfig)


def test_mqtt_protocol_may_be_written_as_a_number(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("gateway: {id: gw, site: s}\nmqtt: {protocol: 5}\n")
    assert load(path).config.mqtt.protocol == "5"

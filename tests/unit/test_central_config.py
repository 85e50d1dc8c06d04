"""lineside central's config: refused whole, with file:line and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from lineside.agent.config import ConfigInvalid
from lineside.central.config import load

GOOD = """\
mqtt:
  host: broker.plant
  port: 8883
  client_id: central-1
postgres:
  dsn: "host=db dbname=plant"
group: erp
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "central.yaml"
    path.write_text(text)
    return path


def test_a_good_config_loads_with_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, GOOD)).config
    assert cfg.mqtt.client_id == "central-1" and cfg.mqtt.protocol == "5"
    assert cfg.group == "erp" and cfg.mqtt.topic_prefix == "lineside/v1"
    assert cfg.replay.max_messages == 1000 and cfg.mqtt.session_expiry_s == 3600


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("group: erp", "group: a/b"), ":7: group: use letters"),
        (GOOD.replace("  port: 8883", "  prot: 8883"), ":3: mqtt.prot: unknown key (check the"
                                                       " spelling; see docs/central.md)"),
        (GOOD.replace("postgres:\n  dsn: \"host=db dbname=plant\"", "postgres: {}"),
         ":5: postgres.dsn: required key"),
        (GOOD.replace("client_id: central-1", "client_id: a b"), ":4: mqtt.client_id: use"),
        (GOOD + "replay: {grace_s: -1}\n", ":8: replay.grace_s: Input should be greater"),
        (GOOD + "group: again\n", ":8: group: duplicate key (first given on line 7)"),
        ("postgres: [", ":1: (yaml): not valid YAML"),
    ],
)
def test_a_bad_config_is_refused_with_line_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigInvalid) as refused:
        load(write(tmp_path, text))
    assert expected in str(refused.value), str(refused.value)


def test_lineside_central_check_says_ok_or_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lineside.agent.cli import main

    assert main(["central", "check", "-c", str(write(tmp_path, GOOD))]) == 0
    assert "ok (group erp, client id central-1" in capsys.readouterr().out
    bad = write(tmp_path, GOOD.replace("group: erp", "group: a b\nextra: 1"))
    assert main(["central", "check", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert ":7: group: use letters" in err and ":8: extra: unknown key" in err
    assert "2 error(s): the config was refused" in err

"""The parts the drivers, simulators and CLI share: clock, backoff, endpoint device. No I/O."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from datetime import UTC
from decimal import Decimal

import pytest

from lineside.agent import handlers
from lineside.agent.cli import postings
from lineside.agent.commands import Count, Receive
from lineside.clock import utc_now
from lineside.drivers.base import Backoff
from lineside.simulators.endpoint import EndpointDevice


def test_utc_now_is_aware_utc_and_the_ledger_uses_it() -> None:
    now = utc_now()
    assert now.tzinfo is UTC
    assert handlers.Ledger.__init__.__defaults__ == (utc_now,)


def test_one_backoff_gives_every_user_its_own_sequence() -> None:
    backoff = Backoff(1.0, 5.0, factor=3.0)
    first, second = backoff.delays(), backoff.delays()
    assert list(itertools.islice(first, 4)) == [1.0, 3.0, 5.0, 5.0]
    assert list(itertools.islice(second, 2)) == [1.0, 3.0]


def test_a_backoff_cannot_be_changed_under_the_drivers_sharing_it() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Backoff().max_s = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kind", "prefix", "cause"),
    [(Receive, "cli-receive", "receipt by hand"), (Count, "cli-count", "cycle count")],
)
def test_receive_and_count_by_hand_differ_only_in_kind_key_and_cause(
    kind: type[Receive | Count], prefix: str, cause: str
) -> None:
    args = argparse.Namespace(
        item="RM-1", qty=Decimal("2.5"), lot="L1", location="STORE", request_id="r7"
    )
    command = postings._stock_command(args, kind, prefix, cause)
    assert type(command) is kind
    assert (command.key, command.cause) == (f"{prefix}:r7", cause)
    assert (command.item, command.qty, command.lot, command.location) == (
        "RM-1", Decimal("2.5"), "L1", "STORE"
    )


class FakeEndpoint:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.url = "fake://1"

    def plug(self) -> None:
        self.calls.append("plug")

    def unplug(self) -> None:
        self.calls.append("unplug")

    def close(self) -> None:
        self.calls.append("close")


class FakeDevice(EndpointDevice):
    def __init__(self, calls: list[str]) -> None:
        super().__init__(FakeEndpoint(calls))  # type: ignore[arg-type]
        self.calls = calls
        self.running = False

    def _running(self) -> bool:
        return self.running

    def _start_work(self) -> None:
        self.calls.append("start work")
        self.running = True

    def _stop_work(self) -> None:
        self.calls.append("stop work")


def test_a_device_plugs_in_once_and_stops_its_work_before_closing_the_endpoint() -> None:
    calls: list[str] = []
    with FakeDevice(calls) as device:
        assert device.start() is device
        assert device.url == "fake://1"
        device.unplug()
        device.replug()
    assert calls == ["plug", "start work", "unplug", "plug", "stop work", "close"]

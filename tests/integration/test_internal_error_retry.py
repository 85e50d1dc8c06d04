"""A handler's bug is not the command's answer: a retry under the same key runs again."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from lineside.agent.commands import Receive
from lineside.agent.handlers import HANDLERS, Ledger
from tests.integration.test_ledger import remembered


def receipt(ledger: Ledger, key: str) -> Receive:
    return Receive(
        key=key, ts=ledger.clock(), item="STEEL-2MM", qty=Decimal(5), lot="L1", location="LINE-3"
    )


def break_receipts(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*args: Any) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(HANDLERS, Receive, bug)


@pytest.mark.parametrize("path", ["execute", "execute_batch"])
def test_an_internal_error_is_not_remembered_and_a_retry_runs(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    def run(command: Receive) -> Any:
        if path == "execute":
            return ledger.execute(command)
        return ledger.execute_batch([command])[0]

    with monkeypatch.context() as patched:
        break_receipts(patched)
        failed = run(receipt(ledger, "rcv-bug"))
        assert not failed.ok and failed.error.startswith("internal error: ZeroDivisionError")
        assert remembered(ledger.conn, "rcv-bug") is None
    fixed = run(receipt(ledger, "rcv-bug"))  # the fix is deployed; the client retries
    assert fixed.ok and not fixed.duplicate, fixed.error
    assert len(fixed.transactions) == 1


def test_a_refusal_is_still_remembered(ledger: Ledger) -> None:
    unknown = Receive(
        key="rcv-x", ts=ledger.clock(), item="NOPE", qty=Decimal(1), location="LINE-3"
    )
    first = ledger.execute(unknown)
    assert not first.ok
    assert remembered(ledger.conn, "rcv-x") == {
        "ok": False,
        "error": first.error,
        "refused": False,
    }

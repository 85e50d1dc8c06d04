"""Which function handles each command: the one table the Ledger dispatches through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lineside.agent import commands
from lineside.agent.handlers.context import Context
from lineside.agent.handlers.held import discard_held, release_held
from lineside.agent.handlers.master import put_bom, put_item
from lineside.agent.handlers.orders import close_order, start_order
from lineside.agent.handlers.production import complete
from lineside.agent.handlers.readings import counter_reading, meter_reading, notice
from lineside.agent.handlers.stock import count, receive, reverse
from lineside.agent.ledger.work import Work

# A handler applies its command inside the unit of work, or raises Rejected; the Ledger
# commits, remembers the answer and undoes a refusal's writes.
Handler = Callable[[Context, Work, Any], None]

HANDLERS: dict[type[commands.Command], Handler] = {
    commands.Complete: complete,
    commands.CounterReading: counter_reading,
    commands.MeterReading: meter_reading,
    commands.Notice: notice,
    commands.Receive: receive,
    commands.Count: count,
    commands.Reverse: reverse,
    commands.StartOrder: start_order,
    commands.CloseOrder: close_order,
    commands.PutItem: put_item,
    commands.PutBom: put_bom,
    commands.ReleaseHeld: release_held,
    commands.DiscardHeld: discard_held,
}

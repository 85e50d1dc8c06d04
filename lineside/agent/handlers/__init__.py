"""Commands applied to the ledger: the Ledger (ledger.py: once per key, in a unit of work)
and one handler function per command, listed in HANDLERS (table.py), by subject:
production, readings, stock, orders, master, held."""

from lineside.agent.handlers.context import Context
from lineside.agent.handlers.ledger import Ledger
from lineside.agent.handlers.table import HANDLERS, Handler
from lineside.agent.ledger.store import ledger_failure

__all__ = ["HANDLERS", "Context", "Handler", "Ledger", "ledger_failure"]

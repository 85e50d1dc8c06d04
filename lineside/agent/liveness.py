"""Threads that must live as long as the agent does: one that ends unasked is a failure.

Every long-running thread of the agent (ledger writer, device supervisors, the sync's
network, store and worker threads, the health server) is a Loop. Health, `lineside status`
and the systemd watchdog ask the same question of them, so a thread that died of a bug
cannot leave the agent looking healthy while nothing moves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Loop:
    """A thread, and how to tell whether its owner has asked it to end."""

    thread: threading.Thread
    stopping: Callable[[], bool]

    @property
    def died(self) -> bool:
        """Started, ended, and nobody asked it to: an exception or a bug ended it."""
        started = self.thread.ident is not None
        return started and not self.thread.is_alive() and not self.stopping()


def dead(loops: Iterable[Loop]) -> list[str]:
    """The names of the threads that died."""
    return [loop.thread.name for loop in loops if loop.died]


def problem(name: str) -> str:
    """How a dead thread reads in /healthz and `lineside status`."""
    return f"thread {name} has stopped (see the log for why): restart lineside"

"""The systemd notify protocol: a few datagrams to $NOTIFY_SOCKET, nothing more."""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends READY=1, WATCHDOG=1 and STATUS= lines; silent when not run by systemd."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_s = int(usec) / 1_000_000 if usec.isdigit() else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> bool:
        if not self.address:
            return False
        target = self.address
        if target.startswith("@"):  # abstract socket namespace
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the main loop on a full receiver: a lost WATCHDOG=1 is
                # followed by the next one; a hung main loop is what systemd must see.
                sock.setblocking(False)
                sock.connect(target)
                sock.sendall("\n".join(lines).encode())
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

"""The sd_notify protocol: READY=1, WATCHDOG=1 and STATUS= datagrams to systemd's $NOTIFY_SOCKET."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

WATCHDOG_MAX_S = 15.0


class SdNotify:
    """Datagrams to $NOTIFY_SOCKET (a no-op without it)."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = "\0" + address[1:] if address and address.startswith("@") else address
        self.watchdog_usec = watchdog_usec

    @classmethod
    def from_env(cls) -> SdNotify:
        """From systemd's environment (WATCHDOG_USEC only when WATCHDOG_PID is unset or this process)."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        mine = pid is None or pid == str(os.getpid())
        return cls(os.environ.get("NOTIFY_SOCKET"), int(usec) if usec and usec.isdigit() and mine else None)

    @property
    def watchdog_interval(self) -> float:
        """How often to send WATCHDOG=1: half systemd's timeout, at most WATCHDOG_MAX_S."""
        if self.watchdog_usec:
            return min(WATCHDOG_MAX_S, self.watchdog_usec / 2e6)
        return WATCHDOG_MAX_S

    def send(self, *fields: str) -> None:
        """Send `KEY=value` fields in one datagram; failures are logged, never raised."""
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as e:
            log.warning("sd_notify to %s failed: %s", self.address.lstrip("\0"), e)

    def status(self, text: str) -> None:
        """STATUS=<one line>."""
        self.send("STATUS=" + " ".join(text.split()))

"""TCP connect probes: can this host open a TCP connection to an address and port right now?

`tcp_connect` is one probe; `TcpProber` runs probes in short-lived threads and hands their results to the
owner's thread, which a pipe wakes up (the controller keeper polls it with its OVSDB connection).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tor_agent.net.sockets import Endpoint


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe of `key` (what the caller named it by), finished at `at` (the prober's clock)."""

    key: str
    ok: bool
    error: str | None
    at: float


def tcp_connect(where: Endpoint, timeout: float) -> None:
    """Open and close a TCP connection to `where`; raises OSError when it cannot."""
    family = socket.AF_INET6 if where[0].version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((str(where[0]), where[1]))


Connect = Callable[[Endpoint, float], None]


class TcpProber:
    """TCP connect probes, each in a short-lived thread; results are collected by the owner's thread, which
    a pipe (`fileno`) wakes up. `connect` is injectable (tests open the socket in another namespace)."""

    def __init__(
        self,
        timeout_s: float,
        connect: Connect = tcp_connect,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s, self.connect, self.clock = timeout_s, connect, clock
        self._lock = threading.Lock()
        self._results: list[ProbeResult] = []
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._closed = False

    def fileno(self) -> int:
        """Readable when results are waiting."""
        return self._r

    def submit(self, key: str, where: Endpoint | None) -> None:
        """Probe `where` in the background; the result is reported under `key`. None: fails at once (the
        caller could not say where to connect)."""
        threading.Thread(target=self._probe, args=(key, where), name=f"probe {key}", daemon=True).start()

    def _probe(self, key: str, where: Endpoint | None) -> None:
        error: str | None = None
        try:
            if where is None:
                raise OSError(f"cannot probe {key}")
            self.connect(where, self.timeout_s)
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g}s"
        except OSError as e:
            error = os.strerror(e.errno) if e.errno else str(e)
        with self._lock:
            if self._closed:
                return
            self._results.append(ProbeResult(key, error is None, error, self.clock()))
            os.write(self._w, b"p")

    def results(self) -> list[ProbeResult]:
        """Results since the last call."""
        try:
            while os.read(self._r, 512):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            done, self._results = self._results, []
        return done

    def close(self) -> None:
        """Release the pipe (probes still running finish into the void)."""
        with self._lock:
            self._closed = True
            os.close(self._r)
            os.close(self._w)

"""Signals as readable bytes: SIGHUP, SIGTERM and SIGINT wake the daemon's select() through a pipe."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterator

HANDLED = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def signal_pipe() -> Iterator[int]:
    """A non-blocking fd from which the numbers of the signals received can be read (one byte each)."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    old = {s: signal.signal(s, lambda *_: None) for s in HANDLED}
    old_fd = signal.set_wakeup_fd(w)
    try:
        yield r
    finally:
        signal.set_wakeup_fd(old_fd)
        for s, handler in old.items():
            signal.signal(s, handler)
        os.close(r)
        os.close(w)


def received(fd: int) -> bytes:
    """Every signal number waiting in the pipe."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 64)
        except BlockingIOError:
            return data
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            raise
        if not chunk:
            return data
        data += chunk

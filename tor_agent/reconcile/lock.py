"""The engine lock: one writer at a time, within the process (threads) and between processes (flock).

Every writer takes it: an engine pass (the daemon's, or a one-shot `tor-agent apply` when no daemon runs), and
the daemon's OVSDB loop when it repairs drift on its own. The loop only tries it (`try_held`) so that it never
blocks while the engine, which holds the lock, waits for the loop to apply the engine's own update.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = Path("/run/tor-agent/engine.lock")


class EngineLock:
    """A thread lock within the process, flock on `path` between processes."""

    def __init__(self, path: Path = LOCK_FILE) -> None:
        self.path = path
        self._thread_lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock, blocking until the other holder is done."""
        with self._thread_lock:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    @contextmanager
    def try_held(self) -> Iterator[bool]:
        """Hold the lock if it is free now; yields whether it was taken (never blocks)."""
        if not self._thread_lock.acquire(blocking=False):
            yield False
            return
        try:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                yield False
                return
            try:
                yield True
            finally:
                os.close(fd)
        finally:
            self._thread_lock.release()

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

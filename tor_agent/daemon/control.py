"""The daemon's control socket: while `tor-agent run` runs, it is the switch's only writer, and the mutating
commands (`tor-agent apply` ...) hand it their request here instead of changing the switch themselves.

Protocol: one connection per request. The client sends one JSON object and a newline, e.g.
`{"op": "apply", "config": "/etc/tor-agent/agent.yaml"}`; the daemon answers with one JSON object and closes.
The socket is mode 0600 in /run/tor-agent and the peer's uid is checked: only root and the daemon's own user
may ask. Standard library only: the CLI imports it before deciding whether a daemon is there at all.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tor_agent.daemon.paths import CONTROL_SOCKET
from tor_agent.errors import RuntimeFailure

log = logging.getLogger(__name__)

MAX_MESSAGE = 1 << 20  # a reply carries a whole pass report
READ_TIMEOUT_S = 5.0  # how long the daemon waits for a request's bytes after a connection
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class NoDaemon(Exception):
    """No daemon listens on the control socket (none runs, or it left a stale socket behind)."""


class ControlError(RuntimeFailure):
    """The daemon's control socket could not be used, or the daemon did not answer."""


@dataclass
class Request:
    """One request: the client's connection (answer with `ControlServer.reply`) and what it asked."""

    conn: socket.socket
    message: dict[str, Any]
    uid: int


class ControlServer:
    """The listening socket at `path`; `fileno()` for select()."""

    def __init__(self, path: Path = CONTROL_SOCKET) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if _listening(path):
            raise ControlError(f"{path}: another tor-agent daemon is running (one writer per switch)")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # stale, from a daemon that died
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old)
        self._sock.listen(8)
        self._sock.setblocking(False)
        self._inode = path.stat().st_ino

    def fileno(self) -> int:
        return self._sock.fileno()

    def accept(self) -> Request | None:
        """The next request, or None (nothing waiting, or a request refused and answered here)."""
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        conn.setblocking(True)
        conn.settimeout(READ_TIMEOUT_S)
        uid = _peer_uid(conn)
        if uid not in (0, os.geteuid()):
            self.reply(conn, {"ok": False, "error": "permission denied: run as root"})
            return None
        try:
            message = json.loads(_read(conn))
        except (OSError, ValueError) as e:
            self.reply(conn, {"ok": False, "error": f"unreadable request: {e}"})
            return None
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            self.reply(conn, {"ok": False, "error": 'a request is a JSON object with an "op"'})
            return None
        return Request(conn, message, uid)

    @staticmethod
    def reply(conn: socket.socket, answer: dict[str, Any]) -> None:
        """Send `answer` and close the connection; a client that went away is only logged."""
        try:
            conn.sendall(json.dumps(answer).encode() + b"\n")
        except OSError as e:
            log.warning("control: cannot answer the client: %s", e)
        finally:
            conn.close()

    def close(self) -> None:
        """Stop listening and remove the socket (unless another daemon has replaced it since)."""
        self._sock.close()
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()


def request(message: dict[str, Any], path: Path = CONTROL_SOCKET, timeout: float = 120.0) -> dict[str, Any]:
    """Send `message` to the daemon and return its answer. Raises NoDaemon when none listens, ControlError
    when it does not answer within `timeout` s or answers nonsense."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise NoDaemon(str(path)) from e
        except PermissionError as e:
            raise ControlError(f"{path}: permission denied (run as root)") from e
        sock.settimeout(timeout)
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused before it read: answered
                sock.sendall(json.dumps(message).encode() + b"\n")
            answer = json.loads(_read(sock))
        except TimeoutError as e:
            raise ControlError(f"the running tor-agent did not answer within {timeout:g}s ({path})") from e
        except (OSError, ValueError) as e:
            raise ControlError(f"the running tor-agent's answer is unreadable ({path}): {e}") from e
    finally:
        sock.close()
    if not isinstance(answer, dict):
        raise ControlError(f"the running tor-agent's answer is not a JSON object ({path})")
    return answer


def _read(sock: socket.socket) -> bytes:
    """One newline-terminated message (or up to EOF), at most MAX_MESSAGE bytes."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"longer than {MAX_MESSAGE} bytes")
    return data


def _peer_uid(conn: socket.socket) -> int:
    _, uid, _ = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return int(uid)


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
        try:
            probe.connect(str(path))
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
                return False
            raise ControlError(f"{path}: {e}") from e
    return True

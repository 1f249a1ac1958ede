"""ovs-vswitchd's unixctl socket, in-process: what `ovs-appctl` sends, without a process per command.

The socket speaks JSON-RPC (`{"method": "ovs/route/add", "params": [...], "id": N}`); the `ovs` library's
stream and jsonrpc modules (which its own `ovs.unixctl.client` is built on) carry it. On top of them:
- one connection, kept open between calls and opened again when it broke (ovs-vswitchd restarted: a new
  pid, so a new socket, found again through the pidfile as `ovs-appctl -t ovs-vswitchd` finds it);
- a batch of requests is sent at once and the replies are read after (ovs-vswitchd answers the requests
  of one connection in order): a route change for V VTEPs costs one round trip, not V process starts;
- every wait is bounded by the timeout (the library's blocking calls would wait forever on a hung daemon).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tor_agent.ovs.errors import OvsError
from tor_agent.ovs.library import ovs

DEFAULT_RUNDIR = Path("/run/openvswitch")


class UnixctlUnreachable(OvsError):
    """The daemon's unixctl socket could not be used (not running, restarting, hung)."""

    retryable = True


class UnixctlRefused(OvsError):
    """The daemon answered `command` with an error; the message is the daemon's."""

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        super().__init__(message)


def socket_path(target: str, rundir: Path | None = None) -> Path:
    """`target` as a socket path: a path as it is, a daemon name through its pidfile (`<rundir>/NAME.pid` ->
    `<rundir>/NAME.<pid>.ctl`; rundir: $OVS_RUNDIR, else /run/openvswitch). Raises UnixctlUnreachable."""
    if "/" in target:
        return Path(target)
    directory = rundir or Path(os.environ.get("OVS_RUNDIR") or DEFAULT_RUNDIR)
    pidfile = directory / f"{target}.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError) as e:
        raise UnixctlUnreachable(f"{target} is not running ({pidfile}: {e})") from e
    return directory / f"{target}.{pid}.ctl"


class UnixctlClient:
    """Commands to one daemon's unixctl socket (`target`: a daemon name or a socket path); not thread-safe."""

    def __init__(self, target: str = "ovs-vswitchd", timeout_s: float = 5.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._conn: Any = None  # ovs.jsonrpc.Connection

    def call(self, command: str, *args: str) -> str:
        """One command's output. Raises UnixctlRefused (the daemon said no) or UnixctlUnreachable."""
        (answer,) = self.batch([(command, args)])
        if isinstance(answer, UnixctlRefused):
            raise answer
        return answer

    def batch(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[str | UnixctlRefused]:
        """Each request's output or refusal, in order; sent together, answered in order.

        Raises UnixctlUnreachable when the daemon cannot be asked; a connection that broke since its last use
        is opened again once (nothing was answered on it, so nothing is sent twice)."""
        if not requests:
            return []
        fresh = self._conn is None
        try:
            return self._exchange(requests)
        except _Broken as e:
            self.close()
            if fresh or e.answered:
                raise UnixctlUnreachable(str(e)) from e
        try:
            return self._exchange(requests)
        except _Broken as e:
            self.close()
            raise UnixctlUnreachable(str(e)) from e

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _exchange(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[str | UnixctlRefused]:
        deadline = time.monotonic() + self.timeout_s
        conn = self._connection(deadline)
        ids = []
        for command, args in requests:
            message = ovs.jsonrpc.Message.create_request(command, list(args))
            ids.append(message.id)
            error = conn.send(message)
            if error:
                raise _Broken(f"{self._name}: cannot send {command}: {os.strerror(error)}", answered=False)
        answers: dict[int, str | UnixctlRefused] = {}
        while len(answers) < len(ids):
            reply = self._receive(conn, deadline, answered=bool(answers))
            if reply.id in ids and reply.id not in answers:
                command = requests[ids.index(reply.id)][0]
                if reply.error is not None:
                    answers[reply.id] = UnixctlRefused(command, str(reply.error).strip())
                else:
                    answers[reply.id] = str(reply.result)
        return [answers[i] for i in ids]

    @property
    def _name(self) -> str:
        return self.target if "/" in self.target else f"{self.target} (unixctl)"

    def _connection(self, deadline: float) -> Any:
        if self._conn is None:
            path = socket_path(self.target)
            timeout_ms = max(1, int((deadline - time.monotonic()) * 1000))
            error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(f"unix:{path}"), timeout_ms)
            if error:
                raise UnixctlUnreachable(f"{path}: cannot connect: {os.strerror(error)}")
            self._conn = ovs.jsonrpc.Connection(stream)
        return self._conn

    def _receive(self, conn: Any, deadline: float, answered: bool) -> Any:
        while True:
            conn.run()
            error, message = conn.recv()
            if not error and message is not None:
                return message
            if error and error != errno.EAGAIN:
                said = "connection closed" if error == ovs.jsonrpc.EOF else os.strerror(error)
                raise _Broken(f"{self._name}: {said}", answered)
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise UnixctlUnreachable(f"{self._name}: no answer within {self.timeout_s:g}s")
            poller = ovs.poller.Poller()
            conn.wait(poller)
            conn.recv_wait(poller)
            poller.timer_wait(max(1, int(left * 1000)))
            poller.block()


class _Broken(Exception):
    """The connection failed; `answered`: some request of the batch had been answered already."""

    def __init__(self, message: str, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered

"""FRR's daemons asked directly over their vty sockets, as vtysh itself asks them: no vtysh process.

A vtysh start costs 20-35 ms of CPU (tor_agent.frr.vtysh); what it does inside is cheap: connect to each
daemon's `<daemon>.vty` socket in FRR's state directory, send a command and a NUL, and read the answer
up to a NUL-NUL-NUL-status trailer. Used where a process per look would dominate:
- `config_fingerprint()`: every daemon's own running configuration in one text, so that the agent's
  periodic full pass reads and parses FRR's merged configuration (through vtysh) only when it changed;
- `VtyShow.show_json()`: a `show ... json` answered by the one daemon that owns it (the health reads).
Writing configuration stays with vtysh (one session, verified).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tor_agent.errors import RuntimeFailure

DEFAULT_VTY_DIR = Path("/var/run/frr")  # Debian's FRR: --localstatedir=/var/run/frr
DEFAULT_TIMEOUT_S = 10.0
_TRAILER = b"\0\0\0"
CMD_SUCCESS = 0
# Which daemon answers a `show` command (the first prefix that matches); vtysh routes them the same way.
OWNERS = (("show ip ospf", "ospfd"), ("show bfd", "bfdd"), ("show ip route", "zebra"), ("show ", "zebra"))
NOT_CONFIG = ("watchfrr",)  # has a vty, holds no configuration of its own


class VtyError(RuntimeFailure):
    """A daemon's vty socket could not be used (not running, restarting) or the daemon refused the command."""

    retryable = True

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        super().__init__(f"FRR `{command}`: {message}")


@dataclass(frozen=True)
class Vty:
    """The vty sockets in `directory` (FRR's state directory)."""

    directory: Path = DEFAULT_VTY_DIR
    timeout_s: float = DEFAULT_TIMEOUT_S

    def daemons(self) -> list[str]:
        """The daemons with a vty socket there, sorted (a stale socket is listed too: asking it fails)."""
        try:
            names = sorted(p.name.removesuffix(".vty") for p in self.directory.glob("*.vty"))
        except OSError:
            return []
        return [n for n in names if n not in NOT_CONFIG]

    def ask(self, daemon: str, command: str) -> str:
        """`command` (privileged) run by `daemon`; raises VtyError when it cannot be asked or refuses."""
        path = self.directory / f"{daemon}.vty"
        deadline = time.monotonic() + self.timeout_s
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(str(path))
                status, _ = _exchange(sock, "enable", deadline)
                status, out = _exchange(sock, command, deadline) if status == CMD_SUCCESS else (status, "")
        except OSError as e:
            raise VtyError(command, f"{daemon} ({path}): {e.strerror or e}") from e
        if status != CMD_SUCCESS:
            raise VtyError(command, f"{daemon} refused it (status {status}): {' '.join(out.split())[:200]}")
        return out


def _exchange(sock: socket.socket, command: str, deadline: float) -> tuple[int, str]:
    sock.sendall(command.encode() + b"\0")
    data = bytearray()
    while not (len(data) >= 4 and data[-4:-1] == _TRAILER):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer to {command!r}")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError(f"closed while answering {command!r}")
        data += chunk
    return data[-1], data[:-4].decode(errors="replace")


def config_fingerprint(vty: Vty) -> str:
    """Every daemon's own running configuration and which daemons answer, as one text (kept as it is: hashing
    it would load OpenSSL's libcrypto, 3.5 MB of the agent's memory, for a text of a few kilobytes): it
    changes whenever the merged running configuration (`vtysh -c 'show running-config'`) or `show daemons`
    could have."""
    parts = []
    for daemon in vty.daemons():
        try:
            answer = vty.ask(daemon, "show running-config")
        except VtyError as e:
            answer = f"unreachable: {e}"
        parts.append(f"{daemon}\0{len(answer)}\0{answer}")
    return "\0".join(parts)


class ShowJson(Protocol):
    """What answers `show ... json` (tor_agent.frr.vtysh.Vtysh does)."""

    def show_json(self, command: str) -> Any: ...


@dataclass(frozen=True)
class VtyShow:
    """`show_json` (as tor_agent.health's ShowJson) over the vty socket of the daemon that owns the command; when
    that cannot answer (no such socket here, a daemon down), `fallback` (vtysh) is asked, whose error says more."""

    vty: Vty = Vty()
    fallback: ShowJson | None = None

    def show_json(self, command: str) -> Any:
        """The parsed output of a `show ... json` command."""
        if not command.startswith("show ") or not command.endswith(" json"):
            raise ValueError(f"not a `show ... json` command: {command!r}")
        daemon = next(owner for prefix, owner in OWNERS if command.startswith(prefix))
        try:
            out = self.vty.ask(daemon, command)
        except VtyError:
            if self.fallback is None:
                raise
            return self.fallback.show_json(command)
        try:
            return json.loads(out)
        except json.JSONDecodeError as e:
            raise VtyError(command, f"output is not JSON ({e}): {out[:200]!r}") from e

"""The kernel's established TCP connections, through sock_diag netlink (what `ss` uses), and which of them
one daemon (ovs-vswitchd) holds.

Not /proc/net/tcp: reading it walks the whole host's established hash, every bucket of every namespace,
and formats text: about 5 ms of system time per read on a 24 GiB machine even with six sockets, which the
controller keeper's twice-a-second look turned into 1 % of a core. A sock_diag dump filtered to
ESTABLISHED walks that hash too (the kernel sizes it by RAM: ~1 ms of system time per address family on
that machine), so while every connection of interest is known, `DaemonSockets` only asks the kernel
whether each one is still there (`still_established`: one exact lookup by address, port and socket
cookie, no walk) and dumps again only when one is not. A plain AF_NETLINK socket, as in
tor_agent.net.monitor.

Who holds a connection: sock_diag reports each socket's inode and the cgroup of the process that created
it; a process's sockets are its `/proc/PID/fd/N -> socket:[INODE]` links. Any process can connect to a
controller (an operator's nc or openssl s_client), so only the daemon's own sockets may count.
Reading another process's fd links needs ptrace access to it (root with all of its capabilities, or
CAP_SYS_PTRACE): tor-agent's service has CAP_NET_ADMIN only, ovs-vswitchd runs with every capability. There
a daemon that is alone in its cgroup (a systemd service: ovs-vswitchd.service) is recognised by the cgroup
id instead. When neither tells, `DaemonSockets` says it cannot tell (None) rather than guess.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tor_agent.net import nlmsg

Endpoint = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
TCP_ESTABLISHED = 1
INET_DIAG_CGROUP_ID = 21  # an attribute every dump carries since Linux 5.9 (Debian 12: 6.1)
_REQUEST = struct.Struct("=BBBxI48x")  # struct inet_diag_req_v2: family, protocol, ext, states, (any) sockid
_EXACT = struct.Struct("=BBBxI48s")  # the same with a given sockid: one socket looked up, nothing walked
_SOCKID = slice(4, 52)  # struct inet_diag_sockid within struct inet_diag_msg
# struct inet_diag_msg: family, state, timer, retrans, sockid (sport, dport, src, dst, if, cookie), expires,
# rqueue, wqueue, uid, inode
_MSG = struct.Struct("=BBBB2s2s16s16sI8sIIIII")
_SIZES = {socket.AF_INET: 4, socket.AF_INET6: 16}

VSWITCHD = "ovs-vswitchd"
VSWITCHD_PIDFILE = Path("/run/openvswitch/ovs-vswitchd.pid")


@dataclass(frozen=True)
class TcpConnection:
    """One ESTABLISHED TCP connection of this network namespace."""

    local_port: int
    remote: Endpoint  # IPv4-mapped IPv6 remotes as IPv4
    inode: int  # the socket's: /proc/PID/fd/N -> socket:[inode]; 0 while no process holds it (not yet accepted)
    cgroup: int | None = None  # cgroup v2 id of the process that created the socket (None: not reported)
    sockid: tuple[int, bytes] | None = field(default=None, compare=False, repr=False)  # family, inet_diag_sockid


def still_established(connection: TcpConnection) -> bool:
    """Whether this very socket (its addresses, ports and cookie, as a dump reported them) is still
    ESTABLISHED: one exact sock_diag lookup. False for a connection not from a dump. Raises OSError when the
    kernel cannot be asked."""
    if connection.sockid is None:
        return False
    family, sockid = connection.sockid
    request = _EXACT.pack(family, socket.IPPROTO_TCP, 0, 1 << TCP_ESTABLISHED, sockid)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG) as sock:
        sock.send(nlmsg.message(SOCK_DIAG_BY_FAMILY, request))
        data = sock.recv(nlmsg.RECV_SIZE)
    if len(data) < nlmsg.HEADER.size + _MSG.size:
        return False  # NLMSG_ERROR: ENOENT (gone), ESTALE (another socket with the same addresses)
    _, kind, _, _, _ = nlmsg.HEADER.unpack_from(data)
    state = data[nlmsg.HEADER.size + 1]
    return bool(kind == SOCK_DIAG_BY_FAMILY and state == TCP_ESTABLISHED)


def established_tcp() -> frozenset[TcpConnection]:
    """Every ESTABLISHED TCP connection in this thread's network namespace. Raises OSError when the kernel
    cannot be asked."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG) as sock:
        return frozenset(c for family in _SIZES for c in _dump(sock, family))


def _dump(sock: socket.socket, family: int) -> list[TcpConnection]:
    request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 1 << TCP_ESTABLISHED)
    answers = nlmsg.dump(sock, SOCK_DIAG_BY_FAMILY, request)
    return [_connection(body) for kind, body in answers if kind == SOCK_DIAG_BY_FAMILY]


def _connection(body: bytes) -> TcpConnection:
    family, _, _, _, sport, dport, _, dst, _, _, _, _, _, _, inode = _MSG.unpack_from(body)
    size = _SIZES[family]
    remote = ipaddress.ip_address(dst[:size])
    if isinstance(remote, ipaddress.IPv6Address) and remote.ipv4_mapped is not None:
        remote = remote.ipv4_mapped
    port = int.from_bytes(dport, "big")
    cgroup = _cgroup(body)
    sockid = (family, bytes(body[_SOCKID]))
    return TcpConnection(int.from_bytes(sport, "big"), (remote, port), inode, cgroup, sockid)


def _cgroup(body: bytes) -> int | None:
    """INET_DIAG_CGROUP_ID among the attributes that follow the message."""
    for kind, value in nlmsg.attributes(body, _MSG.size):
        if kind == INET_DIAG_CGROUP_ID and len(value) >= 8:
            cgroup: int = struct.unpack_from("=Q", value)[0]
            return cgroup
    return None


# --- which connections a daemon holds ----------------------------------------------------------------------


class OwnerUnknown(Exception):
    """A daemon's sockets cannot be told from other processes' (it is not found, or neither its open files
    nor its cgroup can tell); the message says why."""


@dataclass(frozen=True)
class Holdings:
    """A daemon's sockets as one look at /proc found them: the socket inodes in its fd tables, and cgroups
    holding nothing but the daemon (for processes whose fd tables could not be read)."""

    inodes: frozenset[int]
    cgroups: frozenset[int] = frozenset()

    def holds(self, c: TcpConnection) -> bool | None:
        """Whether `c`'s socket is the daemon's; None when only its cgroup could tell and the kernel did not
        report it."""
        if c.inode in self.inodes:
            return True
        if not self.cgroups:
            return False
        return None if c.cgroup is None else c.cgroup in self.cgroups


class Lookup(Protocol):
    """Finds a daemon's sockets (`ProcessTable`, or a fake)."""

    def look(self, everyone: bool = False) -> Holdings: ...


@dataclass(frozen=True)
class ProcessTable:
    """Where to look for a daemon: its name (the kernel's comm), its pid file, the /proc to read."""

    name: str = VSWITCHD
    pidfile: Path | None = VSWITCHD_PIDFILE
    proc: Path = Path("/proc")

    def look(self, everyone: bool = False) -> Holdings:
        """The sockets of the daemon: the pid file's process (if it names a live one of that name), or, with
        `everyone` or without a usable pid file, every process of that name. Raises OwnerUnknown."""
        pids = [] if everyone else self._pidfile_pid()
        pids = pids or self._named()
        if not pids:
            raise OwnerUnknown(f"no {self.name} process")
        inodes: set[int] = set()
        cgroups: set[int] = set()
        for pid in pids:
            try:
                inodes |= self._socket_inodes(pid)
            except PermissionError as e:
                cgroups.add(self._own_cgroup(pid, e))
        return Holdings(frozenset(inodes), frozenset(cgroups))

    def _pidfile_pid(self) -> list[int]:
        if self.pidfile is None:
            return []
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return []
        return [pid] if self._comm(pid) == self.name else []

    def _named(self) -> list[int]:
        try:
            entries = os.listdir(self.proc)
        except OSError as e:
            raise OwnerUnknown(f"cannot list {self.proc}: {e.strerror}") from e
        return sorted(int(n) for n in entries if n.isdigit() and self._comm(int(n)) == self.name)

    def _comm(self, pid: int | str) -> str | None:
        try:
            return (self.proc / str(pid) / "comm").read_text().strip()
        except OSError:
            return None  # gone, or not a process

    def _socket_inodes(self, pid: int) -> set[int]:
        """The inodes of the sockets process `pid` has open (none once it is gone); PermissionError when its
        fd links cannot be read."""
        fd_dir = self.proc / str(pid) / "fd"
        try:
            names = os.listdir(fd_dir)
        except (FileNotFoundError, ProcessLookupError):
            return set()
        found: set[int] = set()
        for name in names:
            try:
                link = os.readlink(fd_dir / name)
            except FileNotFoundError:
                continue  # closed meanwhile
            if link.startswith("socket:[") and link.endswith("]"):
                found.add(int(link[8:-1]))
        return found

    def _own_cgroup(self, pid: int, denied: PermissionError) -> int:
        """The id of process `pid`'s cgroup (v2) when nothing but processes named like the daemon is in it."""
        why = f"cannot read /proc/{pid}/fd ({denied.strerror})"
        path, hierarchy = self._cgroup_path(pid), self._cgroup2()
        if path is None or hierarchy is None:
            raise OwnerUnknown(f"{why} and it has no cgroup v2")
        if path == "/":
            raise OwnerUnknown(f"{why} and it runs in the root cgroup")
        root, mount = hierarchy
        inside = path.removeprefix(root.rstrip("/")) if root != "/" else path
        directory = mount / inside.lstrip("/")
        try:
            members = (directory / "cgroup.procs").read_text().split()
            cgroup_id = os.stat(directory).st_ino  # a cgroup's id is its directory's inode (64-bit kernels)
        except OSError as e:
            raise OwnerUnknown(f"{why} and its cgroup {path} cannot be read ({e.strerror})") from e
        others = [m for m in members if self._comm(m) != self.name]
        if others:
            raise OwnerUnknown(f"{why} and its cgroup {path} holds other processes too (pid {others[0]})")
        return cgroup_id

    def _cgroup_path(self, pid: int) -> str | None:
        try:
            lines = (self.proc / str(pid) / "cgroup").read_text().splitlines()
        except OSError:
            return None
        return next((line[3:] for line in lines if line.startswith("0::")), None)

    def _cgroup2(self) -> tuple[str, Path] | None:
        """The cgroup v2 hierarchy's mount: (the cgroup at its root, where it is mounted)."""
        try:
            lines = (self.proc / "self" / "mountinfo").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            before, _, after = line.partition(" - ")
            if after.split(" ", 1)[0] == "cgroup2":
                fields = before.split()
                return fields[3], Path(fields[4])
        return None


@dataclass
class DaemonSockets:
    """Which of this namespace's ESTABLISHED TCP connections one daemon holds (ovs-vswitchd by default).

    Cheap when nothing changes: each socket is decided once, by its inode, and /proc is read only when a
    connection of interest has an inode not decided yet (the pid file's process first, every process of
    the daemon's name when that one does not hold it). `reason` says why the last look could not decide;
    sockets left undecided are looked at again with the next new one, or after `retry_s` (a cgroup
    shared only while the service restarts, say).
    """

    table: Lookup = field(default_factory=ProcessTable)
    dump: Callable[[], Iterable[TcpConnection]] = established_tcp
    retry_s: float = 30.0
    confirm: Callable[[TcpConnection], bool] = still_established
    clock: Callable[[], float] = time.monotonic
    reason: str | None = field(default=None, init=False)
    looks: int = field(default=0, init=False)  # how often /proc was read
    _held: set[int] = field(default_factory=set, init=False)
    _other: set[int] = field(default_factory=set, init=False)
    _undecided: set[int] = field(default_factory=set, init=False)
    _failed_at: float = field(default=0.0, init=False)
    _holding: dict[Endpoint, TcpConnection] = field(default_factory=dict, init=False)
    dumps: int = field(default=0, init=False)  # how often the TCP table was dumped

    def endpoints(self, wanted: Collection[Endpoint]) -> frozenset[Endpoint] | None:
        """Of `wanted`, those the daemon holds an ESTABLISHED TCP connection to; None when that cannot be told
        for a connection to one of them (`reason`). Raises OSError when the kernel cannot be asked.

        While the daemon holds a known connection to every one of `wanted`, each is only confirmed (`confirm`:
        one exact lookup); the table is dumped when one is missing or no longer there."""
        if wanted and all(e in self._holding and self.confirm(self._holding[e]) for e in wanted):
            return frozenset(wanted)
        self.dumps += 1
        held = self.held([c for c in self.dump() if c.remote in wanted])
        self._holding = {c.remote: c for c in held or ()}
        return None if held is None else frozenset(c.remote for c in held)

    def held(self, connections: Sequence[TcpConnection]) -> list[TcpConnection] | None:
        """The daemon's among `connections`; None when that cannot be told for one of them."""
        current = {c.inode for c in connections}
        for known in (self._held, self._other, self._undecided):
            known &= current  # forget closed sockets: inode numbers are reused
        self._other |= {0} & current  # nobody holds a socket not yet accepted
        new = any(c.inode not in self._held | self._other | self._undecided for c in connections)
        retry = bool(self._undecided) and self.clock() - self._failed_at >= self.retry_s
        if new or retry:
            self._decide([c for c in connections if c.inode not in self._held | self._other])
        if current & self._undecided:
            return None
        return [c for c in connections if c.inode in self._held]

    def _decide(self, pending: list[TcpConnection]) -> None:
        """Look at /proc for `pending`: the pid file's process, then, for what it does not hold, every
        process of the daemon's name (a foreign socket, or a second daemon's)."""
        verdicts: dict[int, bool | None] = {c.inode: None for c in pending}
        self.reason = None
        try:
            for everyone in (False, True):
                doubtful = [c for c in pending if verdicts[c.inode] is not True]
                if not doubtful:
                    break
                self.looks += 1
                holdings = self.table.look(everyone)
                verdicts |= {c.inode: holdings.holds(c) for c in doubtful}
        except OwnerUnknown as e:
            self.reason = str(e)
            verdicts |= {c.inode: None for c in pending if verdicts[c.inode] is not True}
        for c in pending:
            verdict = verdicts[c.inode]
            if verdict is None:
                self.reason = self.reason or "the kernel does not report sockets' cgroups (Linux 5.9 or later does)"
                self._failed_at = self.clock()
                self._undecided.add(c.inode)
            else:
                (self._held if verdict else self._other).add(c.inode)
                self._undecided.discard(c.inode)

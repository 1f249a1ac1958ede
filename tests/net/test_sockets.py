"""The kernel's established TCP connections through sock_diag, in a namespace holding only the test's own,
and which of them a daemon holds: real processes, as root and with the packaged service's capabilities."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nsutil import CLONE_NEWNET, Netns

from tor_agent.net.sockets import TcpConnection, established_tcp, still_established

V4 = ipaddress.ip_address("127.0.0.1")
V6 = ipaddress.ip_address("::1")


Seen = tuple[int, tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int], int]  # local port, remote, inode


def _connected_pairs() -> tuple[frozenset[TcpConnection], set[Seen]]:
    """Open a v4, a v6 and a v4-mapped-in-v6 connection plus an idle listener; return (read, expected)."""
    keep: list[socket.socket] = []
    expected: set[Seen] = set()
    idle = socket.socket()
    idle.bind(("127.0.0.1", 0))
    idle.listen()
    keep.append(idle)
    for family, server_host, client_host, seen_as in (
        (socket.AF_INET, "127.0.0.1", "127.0.0.1", V4),
        (socket.AF_INET6, "::1", "::1", V6),
        (socket.AF_INET6, "::", "::ffff:127.0.0.1", V4),
    ):
        server = socket.socket(family)
        server.bind((server_host, 0))
        server.listen()
        client = socket.socket(family)
        client.connect((client_host, server.getsockname()[1]))
        accepted, _ = server.accept()
        keep += [server, client, accepted]
        server_port, client_port = server.getsockname()[1], client.getsockname()[1]
        expected |= {
            (client_port, (seen_as, server_port), os.fstat(client.fileno()).st_ino),  # the socket's inode
            (server_port, (seen_as, client_port), os.fstat(accepted.fileno()).st_ino),
        }
    try:
        return established_tcp(), expected
    finally:
        for s in keep:
            s.close()


def own_cgroup_id() -> int | None:
    """The cgroup v2 id of this process: the inode of its cgroup's directory."""
    path = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.startswith("cgroup2 ") and before.split()[3] == "/":
            return os.stat(Path(before.split()[4]) / path.lstrip("/")).st_ino
    return None


def test_established_tcp_lists_exactly_the_established_connections(make_netns: Callable[[str], Netns]) -> None:
    ns = make_netns("sockets")
    ns.ip("link", "set", "lo", "up")
    found, expected = ns.run(_connected_pairs)
    assert {(c.local_port, c.remote, c.inode) for c in found} == expected
    assert {c.cgroup for c in found} == {own_cgroup_id()}  # the creator's cgroup: this test's


def _confirmed_while_open_not_after() -> list[bool]:
    """Per connection family: still_established while open, after the client closed, after a new connection
    reused the same address and port (another socket: its cookie differs)."""
    answers = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        server = socket.socket(family)
        server.bind((host, 0))
        server.listen()
        client = socket.socket(family)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        client.connect((host, server.getsockname()[1]))
        accepted, _ = server.accept()
        port = client.getsockname()[1]
        (seen,) = [c for c in established_tcp() if c.local_port == port]
        answers.append(still_established(seen))
        client.close()
        accepted.close()
        answers.append(still_established(seen))
        again = socket.socket(family)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind((host, port))
        again.connect((host, server.getsockname()[1]))
        back, _ = server.accept()
        answers.append(still_established(seen))
        for s in (again, back, server):
            s.close()
    return answers


def test_still_established_confirms_that_very_socket_without_a_dump(make_netns: Callable[[str], Netns]) -> None:
    ns = make_netns("exact")
    ns.ip("link", "set", "lo", "up")
    assert ns.run(_confirmed_while_open_not_after) == [True, False, False] * 2


def test_established_tcp_of_an_empty_namespace_is_empty(make_netns: Callable[[str], Netns]) -> None:
    ns = make_netns("nosockets")
    assert ns.run(established_tcp) == frozenset()


# --- which connections a daemon holds --------------------------------------------------------------------------

HOLDER = """
import socket, sys
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open("/proc/self/comm", "w") as f:
    f.write(name)
sys.stdin.readline()  # placed (e.g. into a cgroup): connect now
conn = socket.create_connection((host, port))
print(conn.getsockname()[1], flush=True)
sys.stdin.readline()  # then hold the connection until told
"""
DAEMON = "fake-vswitchd"
READER = """
import json, sys
from pathlib import Path
from tor_agent.net.sockets import DaemonSockets, ProcessTable
import ipaddress
wanted = {(ipaddress.ip_address("127.0.0.1"), int(p)) for p in sys.argv[2:]}
sockets = DaemonSockets(ProcessTable(name=sys.argv[1], pidfile=None))
found = sockets.endpoints(wanted)
print(json.dumps({"found": None if found is None else sorted(p for _, p in found), "reason": sockets.reason}))
"""
# What tor-agent.service leaves the agent: root with CAP_NET_ADMIN only.
SERVICE_CAPS = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all,+net_admin"]


@dataclass
class Holder:
    """A process named `name` in the namespace holding a TCP connection to a loopback port there."""

    proc: subprocess.Popen[str]

    @classmethod
    def start(cls, ns: Netns, name: str, port: int) -> Holder:
        argv = ["ip", "netns", "exec", ns.name, sys.executable, "-c", HOLDER, name, "127.0.0.1", str(port)]
        return cls(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))

    def connect(self) -> int:
        """Connect now; the local port."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@contextlib.contextmanager
def holders(ns: Netns) -> Iterator[Callable[[str, int], Holder]]:
    started: list[Holder] = []

    def start(name: str, port: int) -> Holder:
        started.append(Holder.start(ns, name, port))
        return started[-1]

    try:
        yield start
    finally:
        for h in started:
            h.stop()


def listeners(ns: Netns, count: int) -> list[socket.socket]:
    """Listening sockets on loopback inside `ns` (made by a thread that joined it)."""
    made: list[socket.socket] = []

    def body() -> None:
        fd = os.open(f"/run/netns/{ns.name}", os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            for _ in range(count):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                s.listen(8)
                made.append(s)
        finally:
            os.close(fd)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert len(made) == count
    return made


def read_as(ns: Netns, *ports: int, caps: list[str] | None = None) -> dict[str, Any]:
    """DaemonSockets in the namespace, in a process of its own (with `caps`: as the service runs it)."""
    argv = ["nsenter", f"--net=/run/netns/{ns.name}", *(caps or []), sys.executable, "-c", READER, DAEMON]
    done = subprocess.run([*argv, *map(str, ports)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_only_the_daemons_own_connections_count(make_netns: Callable[[str], Netns]) -> None:
    ns = make_netns("owner")
    one, two = listeners(ns, 2)
    p1, p2 = one.getsockname()[1], two.getsockname()[1]
    try:
        with holders(ns) as start:
            start(DAEMON, p1).connect()
            start("nc", p2).connect()  # an operator's connection to the other "controller"
            start("python3", p1).connect()  # and one more to the daemon's
            assert read_as(ns, p1, p2) == {"found": [p1], "reason": None}
    finally:
        one.close()
        two.close()


def test_as_the_service_runs_it_the_daemons_fds_cannot_be_read(make_netns: Callable[[str], Netns]) -> None:
    ns = make_netns("owner")
    (one,) = listeners(ns, 1)
    port = one.getsockname()[1]
    try:
        with holders(ns) as start:
            daemon = start(DAEMON, port)
            daemon.connect()
            found = read_as(ns, port, caps=SERVICE_CAPS)
            assert found["found"] is None  # cannot be told: never a guess
            assert f"cannot read /proc/{daemon.proc.pid}/fd (Permission denied)" in found["reason"]
    finally:
        one.close()


def cgroup2() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted, if this test may make a cgroup in it."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.startswith("cgroup2 ") and before.split()[3] == "/":
            mount = Path(before.split()[4])
            return mount if os.access(mount / "cgroup.procs", os.W_OK) else None
    return None


def test_as_the_service_runs_it_a_daemon_alone_in_its_cgroup_is_told_by_the_cgroup(
    make_netns: Callable[[str], Netns],
) -> None:
    mount = cgroup2()
    if mount is None:
        pytest.skip("no writable cgroup v2 hierarchy to give the daemon a cgroup of its own")
    ns = make_netns("owner")
    one, two = listeners(ns, 2)
    p1, p2 = one.getsockname()[1], two.getsockname()[1]
    group = mount / f"ta-test-{os.getpid()}.service"
    group.mkdir()
    try:
        with holders(ns) as start:
            daemon, other = start(DAEMON, p1), start("openssl", p2)
            (group / "cgroup.procs").write_text(str(daemon.proc.pid))  # as systemd starts a service
            daemon.connect()
            other.connect()
            assert read_as(ns, p1, p2, caps=SERVICE_CAPS) == {"found": [p1], "reason": None}
            (group / "cgroup.procs").write_text(str(other.proc.pid))  # no longer alone: cannot be told
            found = read_as(ns, p1, p2, caps=SERVICE_CAPS)
            assert found["found"] is None and "holds other processes too" in found["reason"]
    finally:
        one.close()
        two.close()
        group.rmdir()  # its processes were killed and reaped

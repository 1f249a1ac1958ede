"""Which TCP connections ovs-vswitchd holds: the /proc reader on a /proc tree made by the test, and the
per-socket memory that keeps it cheap. Pure apart from the temporary files; no kernel, no OVS."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tor_agent.net.sockets import DaemonSockets, Endpoint, Holdings, OwnerUnknown, ProcessTable, TcpConnection

CTL: Endpoint = (ipaddress.ip_address("203.0.113.10"), 6653)
CTL2: Endpoint = (ipaddress.ip_address("203.0.113.11"), 6653)
SSH: Endpoint = (ipaddress.ip_address("192.0.2.7"), 51000)


@dataclass
class FakeProc:
    """A /proc with processes (comm, socket inodes, cgroup) and a cgroup v2 mount, in a temporary directory."""

    root: Path
    unreadable: set[int] = field(default_factory=set)  # pids whose fd links need ptrace access we lack

    @property
    def proc(self) -> Path:
        return self.root / "proc"

    @property
    def cgroups(self) -> Path:
        return self.root / "cgroup"

    def __post_init__(self) -> None:
        (self.proc / "self").mkdir(parents=True)
        mount = f"41 31 0:38 / {self.cgroups} rw,relatime shared:9 - cgroup2 cgroup2 rw\n"
        (self.proc / "self" / "mountinfo").write_text("22 1 0:21 / /proc rw - proc proc rw\n" + mount)

    def add(self, pid: int, comm: str, sockets: tuple[int, ...] = (), cgroup: str = "/") -> None:
        d = self.proc / str(pid)
        (d / "fd").mkdir(parents=True)
        (d / "comm").write_text(comm + "\n")
        (d / "cgroup").write_text(f"0::{cgroup}\n")
        os.symlink("/dev/null", d / "fd" / "0")
        for n, inode in enumerate(sockets, start=3):
            os.symlink(f"socket:[{inode}]", d / "fd" / str(n))
        group = self.cgroups / cgroup.lstrip("/")
        group.mkdir(parents=True, exist_ok=True)
        with (group / "cgroup.procs").open("a") as f:
            f.write(f"{pid}\n")

    def cgroup_id(self, cgroup: str) -> int:
        return os.stat(self.cgroups / cgroup.lstrip("/")).st_ino

    def readlink(self, path: str | os.PathLike[str]) -> str:
        """os.readlink as the kernel answers it: EACCES for another process's fd links without ptrace access."""
        parts = Path(path).parts
        if len(parts) > 3 and parts[-2] == "fd" and parts[-3].isdigit() and int(parts[-3]) in self.unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return REAL_READLINK(path)


REAL_READLINK = os.readlink


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProc]:
    proc = FakeProc(tmp_path)
    monkeypatch.setattr(os, "readlink", proc.readlink)
    yield proc


def table(fake: FakeProc, pidfile: str | None = "812") -> ProcessTable:
    path = None
    if pidfile is not None:
        path = fake.root / "ovs-vswitchd.pid"
        path.write_text(pidfile + "\n")
    return ProcessTable(pidfile=path, proc=fake.proc)


def test_the_pid_files_process_first_every_ovs_vswitchd_when_asked(fake: FakeProc) -> None:
    fake.add(812, "ovs-vswitchd", (101, 102))
    fake.add(900, "ovs-vswitchd", (201,))  # e.g. the monitor, or another namespace's
    fake.add(950, "nc", (301,))
    assert table(fake).look() == Holdings(frozenset({101, 102}))
    assert table(fake).look(everyone=True) == Holdings(frozenset({101, 102, 201}))


def test_without_a_usable_pid_file_every_ovs_vswitchd(fake: FakeProc) -> None:
    fake.add(812, "ovs-vswitchd", (101,))
    fake.add(950, "nc", (301,))
    everyone = Holdings(frozenset({101}))
    assert table(fake, pidfile=None).look() == everyone
    assert table(fake, pidfile="950").look() == everyone  # stale: that pid is someone else now
    assert table(fake, pidfile="garbage").look() == everyone
    with pytest.raises(OwnerUnknown, match="no ovsdb-server process"):
        ProcessTable(name="ovsdb-server", pidfile=None, proc=fake.proc).look()


def test_unreadable_fds_fall_back_to_a_cgroup_of_its_own(fake: FakeProc) -> None:
    fake.add(812, "ovs-vswitchd", (101,), cgroup="/system.slice/ovs-vswitchd.service")
    fake.add(950, "nc", (301,), cgroup="/user.slice/user-0.slice/session-3.scope")
    fake.unreadable.add(812)
    own = fake.cgroup_id("/system.slice/ovs-vswitchd.service")
    holdings = table(fake).look()
    assert holdings == Holdings(frozenset(), frozenset({own}))
    assert holdings.holds(TcpConnection(40000, CTL, 101, cgroup=own)) is True
    assert holdings.holds(TcpConnection(40001, CTL, 301, cgroup=fake.cgroup_id("/user.slice"))) is False
    assert holdings.holds(TcpConnection(40002, CTL, 302, cgroup=None)) is None  # the kernel did not say


def test_unreadable_fds_and_no_cgroup_of_its_own_cannot_tell(fake: FakeProc) -> None:
    fake.add(812, "ovs-vswitchd", (101,), cgroup="/lab/leaf1")
    fake.add(950, "nc", (301,), cgroup="/lab/leaf1")
    fake.unreadable.add(812)
    with pytest.raises(OwnerUnknown, match=r"cannot read /proc/812/fd \(Permission denied\) and its cgroup "):
        table(fake).look()
    fake.add(813, "ovs-vswitchd", (401,), cgroup="/")
    fake.unreadable.add(813)
    with pytest.raises(OwnerUnknown, match="runs in the root cgroup"):
        table(fake, pidfile="813").look()


@dataclass
class CountingLookup:
    """ovs-vswitchd's sockets by inode; counts the looks at /proc."""

    held: set[int] = field(default_factory=set)
    error: str | None = None
    error_everyone: str | None = None  # only a look at every process of the name fails
    looks: list[bool] = field(default_factory=list)  # `everyone` of each look

    def look(self, everyone: bool = False) -> Holdings:
        self.looks.append(everyone)
        if self.error is not None or (everyone and self.error_everyone is not None):
            raise OwnerUnknown(self.error or self.error_everyone)
        return Holdings(frozenset(self.held))


def reader(lookup: CountingLookup, table: set[TcpConnection]) -> DaemonSockets:
    return DaemonSockets(lookup, lambda: frozenset(table))


def test_each_socket_is_looked_up_once() -> None:
    lookup = CountingLookup(held={11})
    conns = {TcpConnection(40000, CTL, 11), TcpConnection(22, SSH, 12)}
    sockets = reader(lookup, conns)
    for _ in range(5):
        assert sockets.endpoints({CTL, CTL2}) == {CTL}
    assert lookup.looks == [False]  # once, the pid file's process only; the ssh session is of no interest
    lookup.held.add(13)
    conns.add(TcpConnection(40001, CTL2, 13))  # a new connection of ovs-vswitchd
    assert sockets.endpoints({CTL, CTL2}) == {CTL, CTL2}
    assert lookup.looks == [False, False]


def test_while_every_wanted_connection_is_known_it_is_only_confirmed_not_dumped() -> None:
    lookup = CountingLookup(held={11, 13})
    conns = {TcpConnection(40000, CTL, 11), TcpConnection(40001, CTL2, 13)}
    confirmed: list[int] = []
    gone: set[int] = set()

    def confirm(c: TcpConnection) -> bool:
        confirmed.append(c.inode)
        return c.inode not in gone

    sockets = DaemonSockets(lookup, lambda: frozenset(conns), confirm=confirm)
    assert sockets.endpoints({CTL, CTL2}) == {CTL, CTL2} and sockets.dumps == 1
    for _ in range(5):
        assert sockets.endpoints({CTL, CTL2}) == {CTL, CTL2}
    assert sockets.dumps == 1 and sorted(confirmed) == [11] * 5 + [13] * 5
    gone.add(13)  # ovs-vswitchd's connection to CTL2 went: the next look dumps the table again
    conns.discard(TcpConnection(40001, CTL2, 13))
    assert sockets.endpoints({CTL, CTL2}) == {CTL} and sockets.dumps == 2
    assert sockets.endpoints({CTL, CTL2}) == {CTL} and sockets.dumps == 3  # one missing: dumped each time


def test_a_foreign_connection_never_counts_and_is_looked_up_once() -> None:
    lookup = CountingLookup(held={11})
    conns = {TcpConnection(40000, CTL, 11), TcpConnection(45000, CTL2, 21)}  # 21: an operator's nc
    sockets = reader(lookup, conns)
    for _ in range(5):
        assert sockets.endpoints({CTL, CTL2}) == {CTL}
    assert lookup.looks == [False, True]  # not the pid file's process's: every ovs-vswitchd's, then never again
    conns.add(TcpConnection(0, CTL2, 0))  # not accepted yet: nobody holds it
    assert sockets.endpoints({CTL, CTL2}) == {CTL} and len(lookup.looks) == 2


def test_when_it_cannot_be_told_none_and_why_until_a_look_can_tell() -> None:
    lookup = CountingLookup(
        held={11}, error="cannot read /proc/812/fd (Permission denied) and it runs in the root cgroup"
    )
    conns = {TcpConnection(40000, CTL, 11), TcpConnection(45000, CTL2, 21)}
    sockets = reader(lookup, conns)
    assert sockets.endpoints({CTL, CTL2}) is None and sockets.reason == lookup.error
    assert sockets.endpoints({CTL, CTL2}) is None and len(lookup.looks) == 1  # no new look for the same sockets
    lookup.error = None
    conns.add(TcpConnection(40001, CTL2, 13))  # something new: look again, and decide the earlier ones too
    lookup.held.add(13)
    assert sockets.endpoints({CTL, CTL2}) == {CTL, CTL2} and sockets.reason is None
    assert sockets.endpoints({CTL}) == {CTL}  # nothing undecided among these


def test_what_the_pid_files_process_holds_stays_decided_when_the_wider_look_fails() -> None:
    lookup = CountingLookup(held={11}, error_everyone="cannot read /proc/900/fd (...) and it runs in the root cgroup")
    sockets = reader(lookup, {TcpConnection(40000, CTL, 11), TcpConnection(45000, CTL2, 21)})
    assert sockets.endpoints({CTL}) == {CTL}  # only its own: the pid file's process is enough
    assert sockets.endpoints({CTL, CTL2}) is None and sockets.reason == lookup.error_everyone
    assert lookup.looks == [False, False, True]


def test_undecided_sockets_are_looked_at_again_after_a_while() -> None:
    """E.g. ovs-vswitchd.service restarting: its cgroup holds ovs-ctl too until the start is over."""
    now = [0.0]
    lookup = CountingLookup(held={11}, error="cannot read /proc/812/fd (...) and its cgroup ... holds other ...")
    sockets = DaemonSockets(lookup, lambda: {TcpConnection(40000, CTL, 11)}, retry_s=30.0, clock=lambda: now[0])
    assert sockets.endpoints({CTL}) is None
    now[0] = 29.0
    assert sockets.endpoints({CTL}) is None and len(lookup.looks) == 1
    lookup.error = None
    now[0] = 30.0
    assert sockets.endpoints({CTL}) == {CTL} and len(lookup.looks) == 2
    now[0] = 100.0
    assert sockets.endpoints({CTL}) == {CTL} and len(lookup.looks) == 2  # decided: never again


def test_closed_sockets_are_forgotten_inode_numbers_come_back() -> None:
    lookup = CountingLookup()
    conns = {TcpConnection(45000, CTL, 21)}
    sockets = reader(lookup, conns)
    assert sockets.endpoints({CTL}) == frozenset()
    conns.clear()
    assert sockets.endpoints({CTL}) == frozenset()
    lookup.held.add(21)
    conns.add(TcpConnection(40000, CTL, 21))  # the same number, now ovs-vswitchd's socket
    assert sockets.endpoints({CTL}) == {CTL}


def test_with_a_real_proc_reader_on_the_fake_tree(fake: FakeProc) -> None:
    fake.add(812, "ovs-vswitchd", (101,))
    fake.add(950, "openssl", (301,))
    conns = {TcpConnection(40000, CTL, 101), TcpConnection(45000, CTL, 301), TcpConnection(45001, CTL2, 301)}
    sockets = DaemonSockets(table(fake), lambda: frozenset(conns))
    assert sockets.endpoints({CTL, CTL2}) == {CTL} and sockets.looks == 2

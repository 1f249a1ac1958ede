"""The daemon's parts on their own: the pure schedule (explicit times), the engine lock's try, the control
socket's protocol and its refusals."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from engine_fakes import ECMP, FakeFrr, FakeKernel, ospf

from tor_agent.daemon.control import ControlError, ControlServer, NoDaemon, request
from tor_agent.daemon.kernel import KernelView
from tor_agent.daemon.quiet import QuietFrr
from tor_agent.daemon.schedule import Schedule
from tor_agent.errors import RuntimeFailure
from tor_agent.frr.apply import FrrApplyResult
from tor_agent.net import NetlinkChanges
from tor_agent.net.monitor import RouteUpdate
from tor_agent.reconcile.lock import EngineLock


def test_schedule_a_full_pass_first_then_every_full_every() -> None:
    s = Schedule(full_every=30.0, debounce=0.05)
    s.full_now(100.0)
    assert s.due(100.0, ready=False) == "full"
    s.started()
    s.finished("full", failed=False, now=100.5)
    assert s.due(101.0, ready=True) is None and s.deadline(ready=True) == 130.5
    assert s.due(130.5, ready=True) == "full"


def test_schedule_backs_off_after_problems_up_to_full_every() -> None:
    s = Schedule(full_every=5.0, debounce=0.05)
    waits = []
    for now in (0.0, 10.0, 20.0, 30.0, 40.0):
        s.finished("full", failed=True, now=now)
        waits.append(s.next_full - now)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    s.finished("full", failed=False, now=50.0)
    assert s.next_full == 55.0 and s.backoff == 0.0


def test_schedule_debounces_route_changes_into_an_overlay_pass_and_links_into_a_full_one() -> None:
    s = Schedule(full_every=30.0, debounce=0.05, next_full=1000.0)
    s.netlink(NetlinkChanges(routes=True), 10.0)
    assert s.due(10.04, ready=True) is None and s.deadline(ready=True) == pytest.approx(10.05)
    assert s.due(10.05, ready=True) == "overlay"
    s.netlink(NetlinkChanges(links=True), 10.06)
    assert s.due(10.2, ready=True) == "full"
    s.started()
    assert s.due(10.3, ready=True) is None and not s.changes


def test_schedule_a_stream_of_changes_waits_at_most_the_debounce_cap() -> None:
    s = Schedule(full_every=30.0, debounce=0.05, next_full=1000.0)
    now = 10.0
    while s.due(now, ready=True) is None:
        s.netlink(NetlinkChanges(routes=True), now)
        now += 0.04  # always within the debounce of the last change
    assert now == pytest.approx(10.28)  # first change + 5 x debounce, not never


def test_schedule_no_event_pass_before_ready_and_a_hold_down_ends_in_an_overlay_pass() -> None:
    s = Schedule(full_every=30.0, debounce=0.05, next_full=1000.0)
    s.netlink(NetlinkChanges(routes=True), 10.0)
    assert s.due(11.0, ready=False) is None and s.deadline(ready=False) == 1000.0
    s.started()
    s.finished("overlay", failed=False, now=20.0, held={IPv4Address("198.18.0.13"): 2.0})
    assert s.due(22.0, ready=True) is None and s.due(22.05, ready=True) == "overlay"


def test_schedule_a_reroute_runs_a_routes_pass_after_the_settle_and_the_overlay_pass_stays_due() -> None:
    s = Schedule(full_every=30.0, debounce=0.05, next_full=1000.0, settle=0.002)
    s.netlink(NetlinkChanges(routes=True), 10.0)
    s.reroute(10.0)
    assert s.due(10.001, ready=True) is None and s.deadline(ready=True) == pytest.approx(10.002)
    assert s.due(10.002, ready=True) == "routes"
    s.started("routes")
    s.finished("routes", failed=True, now=10.003)  # no timer moves: the overlay pass does what it could not
    assert s.next_full == 1000.0 and s.backoff == 0.0
    assert s.due(10.004, ready=True) is None and s.deadline(ready=True) == pytest.approx(10.05)
    assert s.due(10.05, ready=True) == "overlay"


def test_schedule_a_stream_of_reroutes_waits_at_most_the_cap_and_an_overlay_pass_due_covers_it() -> None:
    s = Schedule(full_every=30.0, debounce=0.05, next_full=1000.0, settle=0.002)
    now = 10.0
    while s.due(now, ready=True) is None:
        s.reroute(now)
        now += 0.0015  # always within the settle of the last one
    assert now == pytest.approx(10.0105)  # the first step past first + 5 x settle, not never
    s.started("routes")
    s.netlink(NetlinkChanges(routes=True), 20.0)
    s.reroute(20.0)
    assert s.due(20.06, ready=True) == "overlay"  # both due: the overlay pass moves the routes too
    s.started("overlay")
    assert s.due(20.07, ready=True) is None and s.reroute_first is None


def test_frr_is_read_in_full_only_when_its_fingerprint_moved() -> None:
    inner, marks = FakeFrr(), ["boot"]
    frr = QuietFrr(inner, lambda: marks[0])
    rendered = "router ospf\n maximum-paths 8\nexit\n"

    def full_pass() -> FrrApplyResult:
        return frr.apply(frr.plan(rendered, frr.read()))

    assert full_pass().changed  # the first apply changes FRR: the next pass must read it again
    marks[0] = "after our apply"
    assert not full_pass().changed and frr.reads == 2
    for _ in range(3):
        assert not full_pass().changed
    assert (frr.reads, frr.skipped) == (2, 3) and inner.calls.count("read") == 2
    marks[0], inner.synced = "hand edit", False  # someone changed FRR: the fingerprint moved
    assert full_pass().changed and frr.reads == 3
    inner.error = RuntimeFailure("vtysh: no answer")
    marks[0] = "again"
    with pytest.raises(RuntimeFailure):
        full_pass()
    inner.error = None
    assert full_pass().changed is False and frr.reads == 5  # a failed apply is never trusted


def test_the_kernel_view_answers_from_the_announcements_and_reads_again_when_they_cannot_cover_it() -> None:
    now = [0.0]
    kernel = FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),))
    view = KernelView(kernel, max_age_s=300.0, clock=lambda: now[0])
    assert view.routes() == kernel.routes_now and view.macs() and kernel.calls == ["routes", "macs"]
    moved = ospf("198.18.0.12", ECMP[1])
    assert view.changed(NetlinkChanges(routes=True, route_updates=[RouteUpdate(moved)]))
    assert view.routes() == (moved,) and view.macs() and kernel.calls == ["routes", "macs"]  # nothing read
    now[0] = 300.0
    view.routes()
    assert kernel.calls == ["routes", "macs", "routes"]  # too old: read again all the same
    for changes in (NetlinkChanges(links=True), NetlinkChanges(routes=True), NetlinkChanges(routes_lost=True)):
        calls = len(kernel.calls)
        assert not view.changed(changes)  # a link change, an unreadable route change, lost announcements
        view.routes()
        assert len(kernel.calls) == calls + 1


def test_try_held_does_not_block_while_another_holds_the_lock(tmp_path: Path) -> None:
    lock, other = EngineLock(tmp_path / "lock"), EngineLock(tmp_path / "lock")  # two "processes"
    with other.held(), lock.try_held() as got:
        assert got is False
    with lock.try_held() as got:
        assert got is True
        with lock.try_held() as again:  # another thread of the same process
            assert again is False


def serve_one(server: ControlServer, answer: dict[str, object]) -> threading.Thread:
    def run() -> None:
        import select

        select.select([server], [], [], 5)
        req = server.accept()
        if req is not None:
            server.reply(req.conn, {**answer, "asked": req.message})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_control_socket_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "run" / "control.sock"
    server = ControlServer(path)
    try:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        thread = serve_one(server, {"ok": True})
        answer = request({"op": "hello"}, path, 5)
        thread.join(5)
        assert answer == {"ok": True, "asked": {"op": "hello"}}
    finally:
        server.close()
    assert not path.exists()


def test_no_daemon_stale_socket_and_second_daemon(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    with pytest.raises(NoDaemon):
        request({"op": "hello"}, path, 1)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a daemon that died: its socket file stays, nothing listens
    with pytest.raises(NoDaemon):
        request({"op": "hello"}, path, 1)
    server = ControlServer(path)  # takes over the stale file
    try:
        with pytest.raises(ControlError, match="another tor-agent daemon is running"):
            ControlServer(path)
    finally:
        server.close()


def test_a_daemon_that_does_not_answer_is_an_error_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    server = ControlServer(path)  # listening, never accepting: a stopped daemon
    try:
        with pytest.raises(ControlError, match=r"did not answer within 0\.2s"):
            request({"op": "hello"}, path, 0.2)
    finally:
        server.close()


def test_bad_requests_are_answered_not_crashed_on(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    server = ControlServer(path)
    try:
        for raw, said in ((b"not json\n", "unreadable request"), (b'["op"]\n', 'with an "op"')):
            thread = threading.Thread(target=lambda: _accept_once(server), daemon=True)
            thread.start()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(str(path))
                client.sendall(raw)
                answer = json.loads(client.makefile().readline())
            thread.join(5)
            assert answer["ok"] is False and said in answer["error"]
    finally:
        server.close()


def _accept_once(server: ControlServer) -> None:
    import select

    select.select([server], [], [], 5)
    assert server.accept() is None  # refused and answered inside accept()


def test_only_root_or_the_daemons_user_may_ask() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another user")
    directory = Path(tempfile.mkdtemp(prefix="tor-agent-control."))
    directory.chmod(0o755)  # pytest's own temporary directories are root's alone
    path = directory / "control.sock"
    server = ControlServer(path)
    os.chmod(path, 0o666)  # even if the mode were loosened, the peer's uid is checked
    try:
        thread = threading.Thread(target=lambda: _accept_once(server), daemon=True)
        thread.start()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, as nobody
            os.setuid(65534)
            try:
                answer = request({"op": "hello"}, path, 5)
                os.write(write, json.dumps(answer).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as f:
            answer = json.loads(f.read())
        os.waitpid(pid, 0)
        thread.join(5)
        assert answer == {"ok": False, "error": "permission denied: run as root"}
    finally:
        server.close()
        shutil.rmtree(directory)

"""Controllers and SSL through the OVS driver, against a real ovsdb-server + ovs-vswitchd and stub controllers.

A stub controller is a few lines of OpenFlow 1.3 (HELLO, ECHO) listening on loopback inside the sandbox's
own network namespace (where ovs-vswitchd runs), over TCP or TLS with a CA made for the test. Assertions
read OVSDB with ovs-vsctl and the flow table with ovs-ofctl, not with tor-agent's code. Also the helpers of
test_controllers_keepalive.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from ovs_sandbox import OvsSandbox
from ovs_testlib import make_intent
from ovsdb_view import by_name, optional, rows

from labs.containerlab.controller.lab_ca import LabCa, make_ca
from tor_agent.model.overlay import OWNER_KEY, OWNER_VALUE, OvsDesired, alternate_target, desired_ovs
from tor_agent.ovs.connection import OvsConnection
from tor_agent.ovs.state import ReconnectController
from tor_agent.reconcile.overlay import OverlayReconciler
from tor_agent.wait import WaitTimeout, wait_until

pytestmark = pytest.mark.ovs

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
OFP13, OFPT_HELLO, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 4, 0, 2, 3
PORT_A, PORT_B = 6653, 6654
A, B = f"tcp:127.0.0.1:{PORT_A}", f"tcp:127.0.0.1:{PORT_B}"
STATUS_BUDGET_S = 12.0  # ovs-vswitchd writes Controller status on its 5 s stats timer
CONNECT_BUDGET_S = 5.0


# --- helpers (also used by test_controllers_keepalive.py) -------------------------------------------------


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Call `fn` in a thread that has joined network namespace `netns`: sockets it opens live there."""
    result: list[T] = []
    errors: list[BaseException] = []

    def body() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {netns}")
            result.append(fn())
        except BaseException as e:  # handed to the caller's thread
            errors.append(e)
        finally:
            os.close(fd)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def ofp_header(kind: int, length: int = 8, xid: int = 1) -> bytes:
    return struct.pack("!BBHI", OFP13, kind, length, xid)


@dataclass
class StubController:
    """An OpenFlow 1.3 controller that only says HELLO and answers ECHO, on `port` of loopback in `netns`.

    `hellos` holds the monotonic time of every session that completed its HELLO exchange; `stop()` closes
    the listener and every session at once, as a killed controller would.
    """

    netns: str
    port: int
    tls: ssl.SSLContext | None = None
    hellos: list[float] = field(default_factory=list)
    tls_failures: int = 0
    _listener: socket.socket | None = None
    _sessions: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> StubController:
        def listen() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(64)
            return sock

        self._listener = in_netns(self.netns, listen)
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with self._lock:
            self._sessions.append(sock)
        try:
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError):
                    self.tls_failures += 1
                    return
                with self._lock:
                    self._sessions.append(sock)
            sock.sendall(ofp_header(OFPT_HELLO))
            self._read(sock)
        except OSError:
            pass
        finally:
            sock.close()

    def _read(self, sock: socket.socket) -> None:
        buf, greeted = b"", False
        while data := sock.recv(65536):
            buf += data
            while len(buf) >= 8:
                version, kind, length, xid = struct.unpack("!BBHI", buf[:8])
                if len(buf) < length:
                    break
                body, buf = buf[8:length], buf[length:]
                if kind == OFPT_HELLO and not greeted:
                    greeted = True
                    self.hellos.append(time.monotonic())
                elif kind == OFPT_ECHO_REQUEST:
                    sock.sendall(struct.pack("!BBHI", version, OFPT_ECHO_REPLY, length, xid) + body)

    def stop(self) -> None:
        if self._listener is not None:
            # close() alone leaves the socket listening while the accept thread is blocked on it.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for sock in sessions:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def wait_hello(self, count: int, timeout: float = CONNECT_BUDGET_S) -> float:
        """The monotonic time of HELLO number `count` (1-based), waiting for it."""
        wait_until(lambda: len(self.hellos) >= count, timeout, interval=0.005, what=f"HELLO {count} on {self.port}")
        return self.hellos[count - 1]


@contextlib.contextmanager
def stubs(box: OvsSandbox, *ports: int, tls: ssl.SSLContext | None = None) -> Iterator[list[StubController]]:
    """Running stub controllers, stopped on exit."""
    running = [StubController(box.netns, port, tls).start() for port in ports]
    try:
        yield running
    finally:
        for stub in running:
            stub.stop()


def controller_intent(
    box: OvsSandbox, allow_removal: bool = False, access_ports: list[str] | None = None, **controllers: Any
) -> OvsDesired:
    """The OVS test leaf with `controllers` as its controllers section (none: without one); its uplink eth1
    is created first."""
    if "eth1" not in box.netns_exec("ip", "-br", "link"):
        box.netns_exec("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1-p")
    edits: dict[str, Any] = {"overlay.access_ports": access_ports or []}
    if controllers:
        edits["controllers"] = controllers
    return desired_ovs(make_intent(**edits), allow_controller_removal=allow_removal)


def reconcile(conn: OvsConnection, desired: OvsDesired) -> OverlayReconciler:
    """One converging pass (raising its errors); the reconciler is returned for more."""
    reconciler = OverlayReconciler(conn, desired)
    reconciler.run_once().raise_for_errors()
    return reconciler


def controller_rows(box: OvsSandbox) -> dict[str, dict[str, Any]]:
    """Controller rows by target, as ovs-vsctl prints them."""
    found = rows(box, "Controller", "target", "inactivity_probe", "max_backoff", "connection_mode", "external_ids")
    return {r["target"]: r for r in found}


def bridge_controllers(box: OvsSandbox, bridge: str = "br-tor") -> list[str]:
    """`ovs-vsctl get-controller`: the targets the bridge holds."""
    return sorted(box.vsctl("get-controller", bridge).split())


def flows(box: OvsSandbox, bridge: str = "br-tor") -> list[str]:
    """The bridge's flows as `priority=... actions=...` (durations and counters left out)."""
    out = box.ofctl("dump-flows", bridge, "--no-stats")
    return sorted(line.strip() for line in out.splitlines() if "actions=" in line)


def tls_context(ca: LabCa, name: str, trust: Path | None = None) -> ssl.SSLContext:
    """A TLS server context for identity `name`, requiring a client certificate signed by `trust` (the CA)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ca.identities[name].cert, ca.identities[name].key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(trust or ca.cert)
    return ctx


# --- tests ---------------------------------------------------------------------------------------------


def test_controller_rows_as_the_intent_says_and_the_switch_connects(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    desired = controller_intent(sandbox, targets=[A, B], inactivity_probe_ms=5000, max_backoff_ms=2000)
    with stubs(sandbox, PORT_A, PORT_B) as (stub_a, stub_b):
        reconciler = reconcile(conn, desired)
        found = controller_rows(sandbox)
        assert set(found) == {A, B} and bridge_controllers(sandbox) == [A, B]
        for r in found.values():
            assert (r["inactivity_probe"], r["max_backoff"], r["connection_mode"]) == (5000, 2000, "out-of-band")
            assert r["external_ids"] == {OWNER_KEY: OWNER_VALUE}
        stub_a.wait_hello(1)
        stub_b.wait_hello(1)

        def both_connected() -> bool:
            conn.run()
            return all(c.is_connected and c.role == "other" for c in conn.controllers())

        wait_until(both_connected, STATUS_BUDGET_S, interval=0.1, what="OVSDB to report both controllers connected")
        assert {c.status_value("state") for c in conn.controllers()} <= {"ACTIVE", "IDLE"}
        sent = conn.transactions
        report = reconciler.run_once(full=True)
        assert report.plan.actions == () and not report.wrote and conn.transactions == sent


def test_replacing_the_only_controller_keeps_the_flows(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    with stubs(sandbox, PORT_A, PORT_B) as (stub_a, stub_b):
        reconciler = reconcile(conn, controller_intent(sandbox, targets=[A]))
        stub_a.wait_hello(1)
        sandbox.ofctl("add-flow", "br-tor", "priority=7,in_port=LOCAL,actions=drop")
        before = flows(sandbox)
        assert "priority=7,in_port=LOCAL actions=drop" in before

        sent = conn.transactions
        reconciler.desired = controller_intent(sandbox, targets=[B])
        report = reconciler.run_once()
        report.raise_for_errors()
        assert conn.transactions == sent + 1 and report.plan.summary().startswith("1 added, 0 changed, 1 deleted")
        stub_b.wait_hello(1)
        assert bridge_controllers(sandbox) == [B]
        assert flows(sandbox) == before  # one transaction: the set never held zero controllers


def test_dropping_every_controller_is_refused_unless_allowed(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    with stubs(sandbox, PORT_A):
        reconciler = reconcile(conn, controller_intent(sandbox, targets=[A]))
        sandbox.ofctl("add-flow", "br-tor", "priority=7,in_port=LOCAL,actions=drop")
        before = flows(sandbox)

        reconciler.desired = controller_intent(sandbox)
        report = reconciler.run_once()
        assert report.plan.actions == () and not report.wrote
        assert [(c.table, c.name) for c in report.conflicts] == [("Controller", "br-tor")]
        assert bridge_controllers(sandbox) == [A] and flows(sandbox) == before

        # On purpose: the controller goes, and OVS clears the flow table (which is why it needs asking).
        reconciler.desired = controller_intent(sandbox, allow_removal=True)
        reconciler.run_once().raise_for_errors()
        assert bridge_controllers(sandbox) == [] and controller_rows(sandbox) == {}
        assert "priority=7,in_port=LOCAL actions=drop" not in flows(sandbox)


def test_hand_edits_to_a_controller_are_repaired_in_place(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    reconciler = reconcile(conn, controller_intent(sandbox, targets=[A], max_backoff_ms=2000))
    uuid = controller_rows(sandbox)[A]["_uuid"]
    sandbox.vsctl("set", "Controller", uuid, "max_backoff=9000", "connection_mode=in-band")
    conn.run()
    report = reconciler.run_once()
    assert report.plan.summary().startswith("0 added, 1 changed, 0 deleted")
    row = controller_rows(sandbox)[A]
    assert (row["_uuid"], row["max_backoff"], row["connection_mode"]) == (uuid, 2000, "out-of-band")


def test_reconnect_connects_at_once_while_ovs_backs_off(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    """OVS keeps its reconnect backoff whatever else changes in the row; a new target spelling does not."""
    reconcile(conn, controller_intent(sandbox, targets=[A], max_backoff_ms=8000))
    # Refused at 0, 1 and 3 s: the next attempt comes 4 s after that.
    log = Path(sandbox.base / "ovs-vswitchd.log")
    wait_until(lambda: "waiting 4 seconds" in log.read_text(), 10, interval=0.05, what="OVS to back off 4 s")
    # Lowering max_backoff (or changing the probe) does not cut the wait short on OVS 3.1 ...
    uuid = controller_rows(sandbox)[A]["_uuid"]
    sandbox.vsctl("set", "Controller", uuid, "max_backoff=1000", "inactivity_probe=6000")
    with stubs(sandbox, PORT_A) as (stub,):
        with pytest.raises(WaitTimeout):
            stub.wait_hello(1, timeout=1.0)
        # ... a new target spelling does.
        kicked = time.monotonic()
        conn.run()
        conn.apply([ReconnectController("br-tor", A)])
        took = stub.wait_hello(1, timeout=2.0) - kicked
        print(f"\nforced reconnect: HELLO {took * 1000:.0f} ms after the rewrite")
        assert took < 0.5
    assert controller_rows(sandbox).keys() == {alternate_target(A)}
    assert bridge_controllers(sandbox) == [alternate_target(A)]


@pytest.fixture
def lab_ca(tmp_path: Path) -> LabCa:
    """A CA of the test's own with identities for the switch and the controller, and an unrelated CA."""
    ca = make_ca(tmp_path / "pki", ["switch", "controller"])
    make_ca(tmp_path / "other", [], ca_name="other-ca")
    return ca


def ssl_section(ca: LabCa, trust: Path) -> dict[str, str]:
    switch = ca.identities["switch"]
    return {"private_key": str(switch.key), "certificate": str(switch.cert), "ca_cert": str(trust)}


def test_ssl_controller_connects_with_the_lab_ca(sandbox: OvsSandbox, conn: OvsConnection, lab_ca: LabCa) -> None:
    target = f"ssl:127.0.0.1:{PORT_A}"
    desired = controller_intent(sandbox, targets=[target], ssl=ssl_section(lab_ca, lab_ca.cert))
    with stubs(sandbox, PORT_A, tls=tls_context(lab_ca, "controller")) as (stub,):
        reconciler = reconcile(conn, desired)
        stub.wait_hello(1)
        assert stub.tls_failures == 0
    (ssl_row,) = rows(sandbox, "SSL", "private_key", "certificate", "ca_cert", "external_ids")
    assert ssl_row["ca_cert"] == str(lab_ca.cert) and ssl_row["external_ids"] == {OWNER_KEY: OWNER_VALUE}
    assert optional(sandbox.vsctl("get", "Open_vSwitch", ".", "ssl").strip()) == ssl_row["_uuid"]
    assert reconciler.run_once(full=True).plan.actions == ()


def test_switch_with_a_wrong_ca_does_not_connect(
    sandbox: OvsSandbox, conn: OvsConnection, lab_ca: LabCa, tmp_path: Path
) -> None:
    target = f"ssl:127.0.0.1:{PORT_A}"
    wrong = tmp_path / "other" / "other-ca.pem"
    desired = controller_intent(sandbox, targets=[target], ssl=ssl_section(lab_ca, wrong))
    with stubs(sandbox, PORT_A, tls=tls_context(lab_ca, "controller")) as (stub,):
        reconcile(conn, desired)

        def refused() -> str | None:
            conn.run()
            (row,) = conn.controllers()
            return None if row.is_connected else row.status_value("last_error")

        error = wait_until(refused, STATUS_BUDGET_S, interval=0.1, what="OVS to report the refused TLS session")
        print(f"\nwrong CA: last_error={error!r}, TLS handshakes refused by the controller: {stub.tls_failures}")
        assert stub.hellos == []
    by_name(sandbox, "Bridge")  # the database still answers

"""Event-driven drift repair: the OverlayLoop reacts to OVSDB change notifications, not to a poll timer.

The loop runs in its own thread with its own connection, with the periodic full pass set to an hour, so
every repair seen here was triggered by the OVSDB monitor. Latencies are printed (pytest -s shows them).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address

import pytest
from ovs_sandbox import OvsSandbox, run
from ovs_testlib import make_intent
from ovsdb_view import bridge_ports, by_name

from tor_agent.model.overlay import OvsDesired, desired_ovs
from tor_agent.ovs.connection import OvsConnection
from tor_agent.reconcile.overlay import OverlayLoop, OverlayReconciler, PassReport
from tor_agent.wait import wait_until

pytestmark = pytest.mark.ovs

TUNNEL = "gre-c612000c"
P13 = "198.18.0.13"
OPTIONS = {"key": "100", "local_ip": "198.18.0.11", "remote_ip": "198.18.0.12"}
REPAIR_BUDGET = 0.5


@dataclass
class Running:
    loop: OverlayLoop
    desired: OvsDesired
    reports: list[PassReport]
    observer: OvsConnection

    def converged(self, box: OvsSandbox) -> bool:
        """Every desired port exists exactly once, is tor-agent's and is set up by ovs-vswitchd."""
        self.observer.run()
        snap = self.observer.snapshot()
        if not all(snap.port_matches(p) for p in self.desired.ports.values()):
            return False
        applied = all((i := snap.interfaces[n]).ofport not in (None, -1) and not i.error for n in self.desired.ports)
        return applied and self.observer.cur_cfg == self.observer.next_cfg


def timed(what: str, predicate: Callable[[], object], timeout: float = 5.0) -> float:
    """Seconds until `predicate` holds (polled every 2 ms through the observer), printed."""
    start = time.monotonic()
    wait_until(predicate, timeout, interval=0.002, what=what)
    elapsed = time.monotonic() - start
    print(f"\n{what}: {elapsed * 1000:.0f} ms")
    return elapsed


@contextmanager
def loop_on(sandbox: OvsSandbox, desired: OvsDesired, vswitchd_timeout: float = 1.0) -> Iterator[Running]:
    """An OverlayLoop converged on `desired`, in a thread; stopped on exit."""
    conn = OvsConnection.open(sandbox.remote, vswitchd_timeout=vswitchd_timeout)
    reports: list[PassReport] = []
    loop = OverlayLoop(
        OverlayReconciler(conn, desired), conn, full_every=3600, retry_after=0.2, on_report=reports.append
    )
    thread = threading.Thread(target=loop.run, name="overlay-loop")
    thread.start()
    observer = OvsConnection.open(sandbox.remote)
    state = Running(loop, desired, reports, observer)
    try:
        wait_until(lambda: state.converged(sandbox), 30, what="initial convergence")
        yield state
    finally:
        loop.stop()
        thread.join(10)
        loop.close()
        conn.close()
        observer.close()
    assert not thread.is_alive()


@pytest.fixture
def running(sandbox: OvsSandbox) -> Iterator[Running]:
    """An OverlayLoop converged on the test leaf (two tunnels), in a thread."""
    sandbox.netns_exec("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1-p")
    with loop_on(sandbox, desired_ovs(make_intent())) as state:
        yield state


def repaired(running: Running, edit: Callable[[], object], what: str, budget: float = REPAIR_BUDGET) -> float:
    """Make a hand edit, then time until the loop's repairing pass returned (it returns once ovs-vswitchd
    applied the repair). The observer's replica may lag the edit, so the loop's own count is the signal."""
    writes = running.loop.stats.writes
    edit()
    return timed(what, lambda: running.loop.stats.writes > writes, budget)


def test_deleted_tunnel_restored_within_budget(sandbox: OvsSandbox, running: Running) -> None:
    old = by_name(sandbox, "Port")[TUNNEL]["_uuid"]
    delete = partial(sandbox.vsctl, "--no-wait", "del-port", "br-tor", TUNNEL)
    repaired(running, delete, "tunnel deleted by hand -> restored and applied by ovs-vswitchd")
    assert running.loop.stats.full_passes == 1  # repaired by an event-driven pass: the full pass is hourly
    assert bridge_ports(sandbox, "br-tor") == ["gre-c612000c", "gre-c612000d"]
    assert by_name(sandbox, "Port")[TUNNEL]["_uuid"] != old
    wait_until(lambda: running.converged(sandbox), 2, what="convergence")


def test_deleted_tunnel_restored_within_budget_among_1000(sandbox: OvsSandbox) -> None:
    sandbox.netns_exec("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1-p")
    base = int(IPv4Address("198.19.0.0"))
    desired = desired_ovs(make_intent(), frozenset(IPv4Address(base + i) for i in range(1, 1001)))
    with loop_on(sandbox, desired, vswitchd_timeout=10) as running:
        delete = partial(sandbox.vsctl, "--no-wait", "del-port", "br-tor", TUNNEL)
        repaired(running, delete, "among 1002 tunnels: one deleted by hand -> restored and applied")
        assert len(bridge_ports(sandbox, "br-tor")) == 1002
        wait_until(lambda: running.converged(sandbox), 5, what="convergence")


def test_changed_options_repaired(sandbox: OvsSandbox, running: Running) -> None:
    change = partial(
        sandbox.vsctl, "--no-wait", "set", "Interface", TUNNEL, "options:remote_ip=192.0.2.1", "options:csum=true"
    )
    repaired(running, change, "tunnel options changed by hand -> repaired and applied")
    assert by_name(sandbox, "Interface", "options")[TUNNEL]["options"] == OPTIONS


def test_foreign_port_survives_the_loop(sandbox: OvsSandbox, running: Running) -> None:
    sandbox.vsctl("add-port", "br-tor", "hand0", "--", "set", "Interface", "hand0", "type=internal")
    delete = partial(sandbox.vsctl, "--no-wait", "del-port", "br-tor", TUNNEL)  # something to do meanwhile
    repaired(running, delete, "tunnel restored next to a hand-made port")
    assert bridge_ports(sandbox, "br-tor") == ["gre-c612000c", "gre-c612000d", "hand0"]


def test_update_from_another_thread(sandbox: OvsSandbox, running: Running) -> None:
    running.desired = desired_ovs(make_intent(), frozenset({IPv4Address("198.18.0.20")}))
    running.loop.update(running.desired)
    timed("discovered peer handed to the loop -> tunnel applied", lambda: running.converged(sandbox))
    assert bridge_ports(sandbox, "br-tor") == ["gre-c612000c", "gre-c612000d", "gre-c6120014"]


def test_vswitchd_restart(sandbox: OvsSandbox, running: Running) -> None:
    sandbox.stop_daemon("ovs-vswitchd", signal.SIGKILL)
    sandbox.vsctl("--no-wait", "del-port", "br-tor", TUNNEL)  # drift while ovs-vswitchd is gone
    timed("tunnel restored in OVSDB while ovs-vswitchd is down", lambda: TUNNEL in bridge_ports(sandbox, "br-tor"))
    sandbox.start_vswitchd()
    timed("ovs-vswitchd restarted -> converged", lambda: running.converged(sandbox), 10)
    assert bridge_ports(sandbox, "br-tor") == ["gre-c612000c", "gre-c612000d"]
    assert bridge_ports(sandbox, "br-eth1") == ["eth1"]
    assert len(by_name(sandbox, "Interface")) == len(running.desired.ports)  # by_name also rejects duplicates


def test_ovsdb_server_restart_with_offline_edits(sandbox: OvsSandbox, running: Running) -> None:
    ports = by_name(sandbox, "Port")
    bridge = by_name(sandbox, "Bridge")["br-tor"]["_uuid"]
    sandbox.stop_daemon("ovsdb-server")
    # While the server is down: drop one tunnel from the bridge and change the other's options.
    txn = [
        "Open_vSwitch",
        {
            "op": "mutate",
            "table": "Bridge",
            "where": [["_uuid", "==", ["uuid", bridge]]],
            "mutations": [["ports", "delete", ["uuid", ports[TUNNEL]["_uuid"]]]],
        },
        {
            "op": "update",
            "table": "Interface",
            "where": [["name", "==", "gre-c612000d"]],
            "row": {"options": ["map", [["remote_ip", "192.0.2.9"]]]},
        },
    ]
    run(["ovsdb-tool", "transact", str(sandbox.db_file), json.dumps(txn)])
    restarted = time.monotonic()
    sandbox.start_ovsdb()

    def repaired_in_db() -> bool:
        options = by_name(sandbox, "Interface", "options")["gre-c612000d"]["options"]
        return bridge_ports(sandbox, "br-tor") == ["gre-c612000c", "gre-c612000d"] and options["remote_ip"] == P13

    timed("ovsdb-server restarted with offline edits -> repaired", repaired_in_db, 15)
    print(f"(from the restart: {(time.monotonic() - restarted) * 1000:.0f} ms, includes the IDL's reconnect backoff)")
    wait_until(lambda: running.converged(sandbox), 5, what="convergence")
    assert bridge_ports(sandbox, "br-tor") == ["gre-c612000c", "gre-c612000d"]
    assert len(by_name(sandbox, "Port")) == len(running.desired.ports)
    assert by_name(sandbox, "Interface", "options")["gre-c612000d"]["options"]["remote_ip"] == "198.18.0.13"

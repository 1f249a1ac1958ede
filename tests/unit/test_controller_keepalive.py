"""The controller keeper: its pure state machine fed with explicit times, and its shell against fakes."""

from __future__ import annotations

import ipaddress
import itertools
import select
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import yaml

from tor_agent.config import load_text
from tor_agent.health.controllers import Endpoint, endpoint
from tor_agent.model.overlay import EMPTY, ControllerSpec
from tor_agent.net.sockets import DaemonSockets, Holdings, OwnerUnknown, TcpConnection
from tor_agent.net.tcp_probe import TcpProber
from tor_agent.ovs.state import Action, ApplyResult, ControllerState, OvsSnapshot, ReconnectController
from tor_agent.reconcile.controllers import ControllerKeeper, KeepalivePolicy, KeepaliveSettings
from tor_agent.reconcile.overlay import OverlayLoop, OverlayReconciler
from tor_agent.wait import wait_until

A, B = "tcp:203.0.113.10:6653", "tcp:203.0.113.11:6653"
EP_A: Endpoint = (ipaddress.ip_address("203.0.113.10"), 6653)
EP_B: Endpoint = (ipaddress.ip_address("203.0.113.11"), 6653)
SETTINGS = KeepaliveSettings(
    bridge="br-tor", targets=(A, B), probe_interval_s=0.5, grace_s=10.0, first_holdoff_s=1.0, max_holdoff_s=8.0
)


def row(target: str, connected: bool = True, role: str = "other", owned: bool = True, **status: str) -> ControllerState:
    spec = ControllerSpec(target, 5000, 8000, "out-of-band")
    return ControllerState("br-tor", target, owned, spec, connected, role, tuple(sorted(status.items())))


def up(*endpoints: Endpoint) -> frozenset[Endpoint]:
    return frozenset(endpoints)


def kinds(policy: KeepalivePolicy) -> list[tuple[str, str]]:
    return [(e.kind, e.subject) for e in policy.events]


def test_connected_controllers_need_nothing() -> None:
    p = KeepalivePolicy(SETTINGS, now=0.0)
    p.observe(0.0, [row(A), row(B)], up(EP_A, EP_B))
    assert p.probes_due(0.0) == [] and p.reconnects_due(0.0) == [] and p.alarms(100.0) == []
    st = p.status(1.0)
    assert [(c.target, c.connected, c.flaps) for c in st.controllers] == [(A, True, 0), (B, True, 0)]


def test_a_lost_controller_is_probed_and_reconnected_once_it_answers() -> None:
    p = KeepalivePolicy(SETTINGS, now=0.0)
    p.observe(0.0, [row(A), row(B)], up(EP_A, EP_B))
    p.observe(1.0, [row(A), row(B)], up(EP_B))  # the kernel knows before OVSDB does
    assert kinds(p) == [("disconnected", A)]
    assert p.probes_due(1.0) == [A] and p.probes_due(1.2) == []  # one probe in flight at a time
    p.probe_result(1.01, A, ok=False, error="Connection refused")
    assert p.reconnects_due(1.01) == [] and p.probes_due(1.3) == [] and p.probes_due(1.5) == [A]
    p.probe_result(1.52, A, ok=True)
    assert p.reconnects_due(1.52) == [A]
    assert p.reconnects_due(1.6) == []  # no second rewrite without a newer probe and the hold-off
    p.observe(1.56, [row(A), row(B)], up(EP_A, EP_B))
    assert kinds(p)[-1] == ("connected", A)
    st = p.status(2.0).controllers[0]
    assert (st.connected, st.flaps, st.reconnects_forced, st.reachable) == (True, 1, 1, None)


def test_rewrites_back_off_while_the_switch_still_cannot_connect() -> None:
    p = KeepalivePolicy(SETTINGS, now=0.0)
    p.observe(0.0, [row(A, connected=False), row(B)], up(EP_B))
    kicks, now = [], 0.0
    while now < 40.0:
        for target in p.probes_due(now):
            p.probe_result(now, target, ok=True)  # TCP gets through, TLS (say) does not
        if p.reconnects_due(now):
            kicks.append(now)
        now = round(now + 0.25, 2)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(kicks)]
    assert kicks[0] == 0.0
    assert gaps[:4] == [1.0, 2.0, 4.0, 8.0] and set(gaps[4:]) == {8.0}  # capped at the intent's max_backoff


def test_every_controller_down_raises_one_alarm_after_grace_then_clears() -> None:
    p = KeepalivePolicy(SETTINGS, now=0.0)
    p.observe(0.0, [row(A), row(B)], up(EP_A, EP_B))
    p.observe(2.0, [row(A), row(B)], up())
    assert p.alarms(11.9) == []
    (alarm,) = p.alarms(12.0)
    assert (alarm.kind, alarm.subject) == ("all-down", "br-tor")
    assert "installed flows keep forwarding (fail_mode secure)" in alarm.message
    p.observe(13.0, [row(A), row(B)], up(EP_B))
    (alarm,) = p.alarms(13.0)
    assert (alarm.kind, alarm.subject) == ("down", A) and "not connected for 11s" in alarm.message
    assert ("cleared", "br-tor") in kinds(p)


def test_state_before_the_keeper_started_comes_from_ovs_counters() -> None:
    p = KeepalivePolicy(SETTINGS, now=100.0)
    p.observe(100.0, [row(A, connected=False, sec_since_disconnect="30"), row(B)], None)
    assert p.status(100.0).controllers[0].down_for_s == 30.0
    assert [a.kind for a in p.alarms(100.0)] == ["down"]


def test_without_the_kernel_table_ovsdb_decides() -> None:
    p = KeepalivePolicy(SETTINGS, now=0.0)
    p.observe(0.0, [row(A), row(B)], None)
    p.observe(1.0, [row(A, connected=False), row(B)], None)
    assert kinds(p) == [("disconnected", A)] and p.probes_due(1.0) == [A]


S = "ssl:203.0.113.12:6653"
EP_S: Endpoint = (ipaddress.ip_address("203.0.113.12"), 6653)


def test_an_ssl_controller_is_connected_when_ovsdb_agrees() -> None:
    """ovs-vswitchd's TCP connection is ESTABLISHED during the TLS handshake too, one refused included."""
    p = KeepalivePolicy(replace(SETTINGS, targets=(A, S)), now=0.0)
    p.observe(0.0, [row(A), row(S, connected=False, state="CONNECTING")], up(EP_A, EP_S))
    assert [c.connected for c in p.status(0.0).controllers] == [True, False]
    p.observe(1.0, [row(A), row(S, state="ACTIVE")], up(EP_A, EP_S))
    assert [c.connected for c in p.status(1.0).controllers] == [True, True]


def test_after_an_ssl_connection_went_an_older_is_connected_is_not_believed() -> None:
    p = KeepalivePolicy(replace(SETTINGS, targets=(A, S)), now=0.0)
    before = row(S, state="ACTIVE", sec_since_connect="20")
    p.observe(0.0, [row(A), before], up(EP_A, EP_S))
    p.observe(1.0, [row(A), before], up(EP_A))  # the connection went; OVSDB still says connected
    assert kinds(p) == [("disconnected", S)]
    p.observe(1.5, [row(A), before], up(EP_A, EP_S))  # a new TLS handshake, maybe one about to be refused
    assert not p.status(1.5).controllers[1].connected
    assert p.probes_due(1.5) == [S]
    p.probe_result(1.5, S, ok=True)
    assert p.reconnects_due(1.5) == []  # ovs-vswitchd is connecting: a rewrite would only cut it short
    p.observe(4.0, [row(A), row(S, connected=False, state="BACKOFF", last_error="Protocol error")], up(EP_A))
    assert not p.status(4.0).controllers[1].connected  # refused after all
    assert p.reconnects_due(4.0) == [S]  # and in backoff: now the rewrite
    p.observe(4.2, [row(A), row(S, connected=False, state="BACKOFF", last_error="Protocol error")], up(EP_A, EP_S))
    p.observe(6.0, [row(A), row(S, state="ACTIVE", sec_since_connect="1")], up(EP_A, EP_S))
    assert p.status(6.0).controllers[1].connected  # written by ovs-vswitchd after the loss: believed
    assert kinds(p)[-1] == ("connected", S)


def test_no_master_or_equal_is_an_alarm_after_grace() -> None:
    p = KeepalivePolicy(SETTINGS, now=0.0)
    p.observe(0.0, [row(A, role="slave"), row(B, role="slave")], up(EP_A, EP_B))
    assert p.alarms(9.0) == []
    (alarm,) = p.alarms(10.0)
    assert alarm.kind == "no-master" and A in alarm.message
    p.observe(11.0, [row(A, role="master"), row(B, role="slave")], up(EP_A, EP_B))
    assert p.alarms(11.0) == []


def test_a_row_tor_agent_does_not_own_is_never_rewritten() -> None:
    p = KeepalivePolicy(SETTINGS, now=0.0)
    p.observe(0.0, [row(A, connected=False, owned=False), row(B)], up(EP_B))
    assert p.probes_due(0.0) == [A]
    p.probe_result(0.0, A, ok=True)
    assert p.reconnects_due(0.0) == []


def test_next_wakeup_is_the_next_probe_or_grace_deadline() -> None:
    p = KeepalivePolicy(SETTINGS, now=0.0)
    p.observe(0.0, [row(A), row(B)], None)
    assert p.next_wakeup(0.0) == 60.0  # OVSDB announces its changes: a long sleep
    p.observe(0.0, [row(A), row(B)], up(EP_A, EP_B))
    assert p.next_wakeup(0.0) == 1.0  # the kernel's TCP table does not: read it again soon
    p.observe(1.0, [row(A), row(B)], up(EP_B))
    assert p.probes_due(1.0) == [A]
    assert p.next_wakeup(1.0) == 1.5  # A is down: the TCP table is read at the probes' pace
    p.probe_result(1.1, A, ok=False)
    assert p.next_wakeup(1.1) == 1.5
    p.observe(1.1, [row(A, connected=False), row(B)], None)
    assert p.next_wakeup(1.1) == 1.5  # the next probe
    assert p.probes_due(1.5) == [A] and p.next_wakeup(1.5) == 11.0  # probe in flight: the grace deadline


def test_the_intents_probe_interval_and_grace_pace_the_keeper() -> None:
    doc = {
        "version": 1,
        "node": {"hostname": "leaf1", "role": "leaf", "router_id": "198.18.0.11", "loopback": "198.18.0.11/32"},
        "underlay": {"ospf": {"area": "0.0.0.0"}, "uplinks": [{"name": "eth1", "unnumbered": True, "mtu": 9000}]},
        "overlay": {"bridge": "br-tor", "dpid": "00000000000000a1", "access_ports": []},
        "controllers": {"targets": [A, B], "alarm_grace_s": 3, "probe_interval_ms": 2000},
    }
    settings = KeepaliveSettings.from_intent(load_text(yaml.safe_dump(doc)))
    assert settings is not None
    p = KeepalivePolicy(settings, now=0.0)
    p.observe(0.0, [row(A), row(B)], None)  # OVSDB only: no TCP-table reads between the keeper's own timers
    p.observe(1.0, [row(A, connected=False), row(B)], None)
    assert p.probes_due(1.0) == [A]
    p.probe_result(1.1, A, ok=False, error="Connection refused")
    assert p.next_wakeup(1.1) == 3.0 and p.probes_due(2.9) == []  # the next probe: 2 s after the last one
    assert p.probes_due(3.0) == [A]
    assert p.next_wakeup(3.0) == 4.0  # probe in flight: the grace deadline, 1 + 3 s
    assert p.alarms(3.9) == []
    (alarm,) = p.alarms(4.0)
    assert (alarm.kind, alarm.subject) == ("down", A)


# --- the shell ---------------------------------------------------------------------------------------


class FakeDriver:
    def __init__(self, rows: list[ControllerState]) -> None:
        self.rows = rows
        self.applied: list[tuple[Action, ...]] = []

    def controllers(self) -> tuple[ControllerState, ...]:
        return tuple(self.rows)

    def apply(self, actions: Sequence[Action]) -> ApplyResult:
        self.applied.append(tuple(actions))
        return ApplyResult(True)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Vswitchd:
    """The TCP table of the switch's namespace and which of its sockets ovs-vswitchd holds (as /proc says)."""

    table: set[TcpConnection] = field(default_factory=set)
    held: set[int] = field(default_factory=set)  # socket inodes

    def connect(self, local_port: int, remote: Endpoint, inode: int, mine: bool = True) -> None:
        self.table.add(TcpConnection(local_port, remote, inode))
        if mine:
            self.held.add(inode)

    def look(self, everyone: bool = False) -> Holdings:
        return Holdings(frozenset(self.held))

    def sockets(self) -> DaemonSockets:
        """tor-agent's reader of ovs-vswitchd's connections over this fake kernel and /proc."""
        return DaemonSockets(self, lambda: frozenset(self.table))


def test_keeper_probes_in_threads_and_rewrites_the_target() -> None:
    reachable: set[Endpoint] = set()

    def connect(where: Endpoint, timeout: float) -> None:
        if where not in reachable:
            raise ConnectionRefusedError(111, "Connection refused")

    clock = Clock()
    driver = FakeDriver([row(A, connected=False), row(B)])
    vswitchd = Vswitchd()
    vswitchd.connect(33000, EP_B, inode=9001)
    keeper = ControllerKeeper(
        driver, SETTINGS, prober=TcpProber(0.1, connect, clock), sockets=vswitchd.sockets(), clock=clock
    )
    try:
        keeper.tick()  # A is down: a probe starts

        def probed() -> bool:
            select.select(keeper.fds(), [], [], 0.05)
            keeper.tick()
            return keeper.status().controllers[0].reachable is not None

        wait_until(probed, 2, interval=0.001, what="the first probe")
        assert keeper.status().controllers[0].reachable is False and driver.applied == []
        assert keeper.status().controllers[0].last_error == "Connection refused"
        reachable.add(EP_A)
        clock.now = 0.5
        keeper.tick()
        wait_until(lambda: probed() and driver.applied, 2, interval=0.001, what="the rewrite")
        assert driver.applied == [(ReconnectController("br-tor", A),)]
        vswitchd.connect(33001, EP_A, inode=9002)
        keeper.tick()
        assert keeper.status().controllers[0].connected and keeper.alarms() == ()
    finally:
        keeper.close()


def test_a_connection_ovs_vswitchd_does_not_hold_is_not_the_switch() -> None:
    """An operator's nc, openssl s_client or the keeper's own probe: connected to A, but not ovs-vswitchd."""
    reachable = threading.Event()

    def connect(where: Endpoint, timeout: float) -> None:
        reachable.set()

    clock = Clock()
    driver = FakeDriver([row(A, connected=False), row(B)])
    vswitchd = Vswitchd()
    vswitchd.connect(33000, EP_B, inode=9001)
    vswitchd.connect(45000, EP_A, inode=7001, mine=False)
    keeper = ControllerKeeper(
        driver, SETTINGS, prober=TcpProber(1.0, connect, clock), sockets=vswitchd.sockets(), clock=clock
    )
    try:
        keeper.tick()
        a, b = keeper.status().controllers
        assert (a.connected, b.connected) == (False, True)
        assert reachable.wait(5)  # A, down, is probed ...

        def rewritten() -> bool:
            keeper.tick()
            return bool(driver.applied)

        wait_until(rewritten, 2, interval=0.001, what="the rewrite")
        assert driver.applied == [(ReconnectController("br-tor", A),)]  # ... and the switch reconnected
        assert keeper.status().ovsdb_only is None
    finally:
        keeper.close()


def test_without_ovs_vswitchds_sockets_ovsdb_decides_and_says_why() -> None:
    class Unreadable:
        def look(self, everyone: bool = False) -> Holdings:
            raise OwnerUnknown("cannot read /proc/812/fd (Permission denied) and it runs in the root cgroup")

    driver = FakeDriver([row(A, connected=False), row(B)])
    table = {TcpConnection(45000, EP_A, 7001), TcpConnection(33000, EP_B, 9001)}
    sockets = DaemonSockets(Unreadable(), lambda: frozenset(table))
    keeper = ControllerKeeper(driver, SETTINGS, prober=TcpProber(1.0, refused), sockets=sockets, clock=Clock())
    try:
        keeper.tick()
        st = keeper.status()
        assert [c.connected for c in st.controllers] == [False, True]  # is_connected, whoever is in the table
        assert st.ovsdb_only == "cannot read /proc/812/fd (Permission denied) and it runs in the root cgroup"
        assert keeper.next_wakeup() == 10.0  # A's grace deadline: no TCP table to poll meanwhile
    finally:
        keeper.close()


def refused(where: Endpoint, timeout: float) -> None:
    raise ConnectionRefusedError(111, "Connection refused")  # never a real connection from a unit test


class FakeEvents:
    generation = 0

    def run(self) -> None:
        pass

    def wait(self, timeout: float, fds: Sequence[int] = ()) -> None:
        select.select(list(fds), [], [], max(0.0, min(timeout, 0.01)))


def test_the_overlay_loop_ticks_its_sidecar() -> None:
    class Sidecar:
        ticks = 0

        def fds(self) -> Sequence[int]:
            return []

        def next_wakeup(self) -> float:
            return 0.0

        def tick(self) -> None:
            self.ticks += 1

    class EmptyDriver:
        def snapshot(self, full: bool = False) -> OvsSnapshot:
            return OvsSnapshot({}, {}, {})

        def apply(self, actions: Sequence[Action]) -> ApplyResult:
            return ApplyResult(False)

    sidecar = Sidecar()
    loop = OverlayLoop(OverlayReconciler(EmptyDriver(), EMPTY), FakeEvents(), full_every=3600, sidecar=sidecar)
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        wait_until(lambda: sidecar.ticks >= 3, 2, interval=0.001, what="the sidecar to tick")
    finally:
        loop.stop()
        thread.join(5)
        loop.close()


def test_settings_from_the_intent() -> None:
    doc = {
        "version": 1,
        "node": {"hostname": "leaf1", "role": "leaf", "router_id": "198.18.0.11", "loopback": "198.18.0.11/32"},
        "underlay": {"ospf": {"area": "0.0.0.0"}, "uplinks": [{"name": "eth1", "unnumbered": True, "mtu": 9000}]},
        "overlay": {"bridge": "br-tor", "dpid": "00000000000000a1", "access_ports": []},
        "controllers": {"targets": ["tcp:203.0.113.10", B], "max_backoff_ms": 2000},
    }
    settings = KeepaliveSettings.from_intent(load_text(yaml.safe_dump(doc)))
    assert settings is not None
    assert (settings.bridge, settings.targets, settings.max_holdoff_s) == ("br-tor", (A, B), 2.0)
    assert (settings.grace_s, settings.probe_interval_s) == (10.0, 0.5)  # the intent's defaults
    assert replace(settings, fail_mode="secure") == settings
    doc["controllers"] |= {"alarm_grace_s": 30, "probe_interval_ms": 200}
    settings = KeepaliveSettings.from_intent(load_text(yaml.safe_dump(doc)))
    assert settings is not None and (settings.grace_s, settings.probe_interval_s) == (30.0, 0.2)
    settings = KeepaliveSettings.from_intent(load_text(yaml.safe_dump(doc)), grace_s=3.0)  # controllers --grace
    assert settings is not None and (settings.grace_s, settings.probe_interval_s) == (3.0, 0.2)
    assert endpoint("ssl:[2001:db8::1]:6653") == (ipaddress.ip_address("2001:db8::1"), 6653)
    assert endpoint(A) == EP_A and endpoint("unix:/run/ctl") is None


def test_reloaded_settings_keep_the_memory_of_targets_that_stay() -> None:
    driver = FakeDriver([row(A), row(B)])
    keeper = ControllerKeeper(driver, SETTINGS, prober=TcpProber(0.1, refused), sockets=None, clock=Clock())
    try:
        keeper.tick()
        driver.rows = [row(A, connected=False), row(B)]
        keeper.tick()
        assert keeper.status().controllers[0].flaps == 1
        c = "tcp:203.0.113.12:6653"
        keeper.update(replace(SETTINGS, targets=(A, c)))
        keeper.tick()
        assert [(s.target, s.flaps) for s in keeper.status().controllers] == [(A, 1), (c, 0)]
    finally:
        keeper.close()

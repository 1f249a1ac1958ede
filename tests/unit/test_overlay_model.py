"""The overlay model (intent -> OVS rows) and its diff against snapshots: pure, no OVS needed."""

from __future__ import annotations

import select
import threading
from collections.abc import Sequence
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from intents import intent_from
from ovs_rows import snapshot_of

from tor_agent.config import Intent
from tor_agent.model.overlay import (
    DATAPATH_ID,
    DISABLE_IN_BAND,
    DP_DESC,
    DP_SN,
    HWADDR,
    InterfaceSpec,
    OvsDesired,
    desired_ovs,
    pairs,
    tunnel_port_name,
)
from tor_agent.ovs.errors import InterfaceError, OvsdbUnavailable, OvsError
from tor_agent.ovs.plan import diff_overlay
from tor_agent.ovs.state import (
    Action,
    AddBridge,
    AddPort,
    ApplyResult,
    DeleteBridge,
    DeletePort,
    InterfaceFailure,
    InterfaceState,
    OvsSnapshot,
    PortState,
    UpdateBridge,
    UpdatePort,
)
from tor_agent.reconcile.lock import EngineLock
from tor_agent.reconcile.overlay import OverlayLoop, OverlayReconciler
from tor_agent.wait import wait_until

LEAF: dict[str, Any] = {
    "version": 1,
    "node": {"hostname": "leaf1", "role": "leaf", "router_id": "198.18.0.11", "loopback": "198.18.0.11/32"},
    "underlay": {
        "ospf": {"area": "0.0.0.0", "bfd": {"enabled": True, "rx_ms": 100, "tx_ms": 150}},
        "uplinks": [
            {"name": "eth1", "address": "198.18.1.1/31", "mtu": 9000},
            {"name": "eth2", "unnumbered": True, "mtu": 9100, "bridge": "up2"},
        ],
    },
    "overlay": {
        "bridge": "br-tor",
        "datapath": "netdev",
        "dpid": "00000000000000a1",
        "protocols": ["OpenFlow13", "OpenFlow10"],
        "fail_mode": "secure",
        "access_ports": ["eth3", "eth4"],
        "tunnels": {"key": 100, "tenant_mtu": 1500, "bfd": True, "peers": ["198.18.0.12"]},
    },
    "controllers": {"targets": ["tcp:203.0.113.10:6653"]},
}
P13, P14, P99 = IPv4Address("198.18.0.13"), IPv4Address("198.18.0.14"), IPv4Address("198.18.0.99")
MACS = {"eth1": "02:00:00:00:01:01", "eth2": "02:00:00:00:02:02"}
SYSTEM = {
    "overlay.datapath": "system",
    "underlay.uplinks": [
        {"name": "eth1", "address": "198.18.1.1/31", "mtu": 9000},
        {"name": "eth2", "unnumbered": True, "mtu": 9000},
    ],
}


def intent(**edits: Any) -> Intent:
    """LEAF with dotted-path edits, e.g. intent(**SYSTEM); None deletes."""
    return intent_from(LEAF, **edits)


def test_tunnel_names_are_hex_of_the_peer_and_fit_ifnamsiz() -> None:
    assert tunnel_port_name(IPv4Address("198.18.0.12")) == "gre-c612000c"
    assert tunnel_port_name(IPv4Address("255.255.255.255")) == "gre-ffffffff"
    assert len(tunnel_port_name(IPv4Address("255.255.255.255"))) <= 15


def test_overlay_bridge() -> None:
    bridge = desired_ovs(intent()).bridges["br-tor"]
    assert bridge.datapath_type == "netdev"
    assert bridge.protocols == ("OpenFlow10", "OpenFlow13")
    assert bridge.fail_mode == "secure"
    assert dict(bridge.other_config) == {
        DATAPATH_ID: "00000000000000a1",
        DISABLE_IN_BAND: "true",
        DP_DESC: "leaf1",
        DP_SN: "198.18.0.11",
    }
    assert bridge.other_config_keys == {DATAPATH_ID, DISABLE_IN_BAND, DP_DESC, DP_SN}


def test_the_bridge_tells_a_controller_the_switch_hostname_and_vtep() -> None:
    """OFPMP_DESC's dp_desc and serial_num: what a controller reads to know the switch and its tunnels' source."""
    edited = intent(**{"node.hostname": "tor-7.row3.dc1", "node.loopback": "198.18.0.77/32"})
    other = dict(desired_ovs(edited).bridges["br-tor"].other_config)
    assert (other[DP_DESC], other[DP_SN]) == ("tor-7.row3.dc1", "198.18.0.77")
    assert all(DP_DESC not in dict(b.other_config) for n, b in desired_ovs(edited).bridges.items() if n != "br-tor")


def test_in_band_leaves_in_band_control_on() -> None:
    bridge = desired_ovs(intent(**{"controllers.connection_mode": "in-band"})).bridges["br-tor"]
    assert DISABLE_IN_BAND not in dict(bridge.other_config)
    assert DISABLE_IN_BAND in bridge.other_config_keys  # managed: a stale "true" is removed


def test_ports_of_the_overlay_bridge() -> None:
    d = desired_ovs(intent(), frozenset({P13}), MACS)
    local = d.ports["br-tor"].interface
    assert (local.type, local.mtu_request) == ("internal", 1500)
    assert [d.ports[p].interface.ofport_request for p in ("eth3", "eth4")] == [1, 2]
    assert all(d.ports[p].bridge == "br-tor" for p in ("eth3", "eth4", "gre-c612000c", "gre-c612000d"))
    assert d.tunnels == {IPv4Address("198.18.0.12"): "gre-c612000c", P13: "gre-c612000d"}


def test_tunnel_interface() -> None:
    iface = desired_ovs(intent()).ports["gre-c612000c"].interface
    assert iface.type == "gre"
    assert iface.options == (("key", "100"), ("local_ip", "198.18.0.11"), ("remote_ip", "198.18.0.12"))
    assert iface.options == pairs(dict(iface.options))  # sorted, as snapshots are
    assert dict(iface.bfd) == {"enable": "true", "min_rx": "100", "min_tx": "150"}


def test_tunnel_without_key_or_bfd() -> None:
    d = desired_ovs(intent(**{"overlay.tunnels": {"peers": ["198.18.0.12"]}}))
    iface = d.ports["gre-c612000c"].interface
    assert iface.options == (("local_ip", "198.18.0.11"), ("remote_ip", "198.18.0.12"))
    assert iface.bfd == ()


def test_bfd_timers_default_without_underlay_bfd() -> None:
    d = desired_ovs(intent(**{"underlay.ospf.bfd": None}))
    assert dict(d.ports["gre-c612000c"].interface.bfd) == {"enable": "true", "min_rx": "300", "min_tx": "300"}


def test_peers_are_static_plus_discovered_never_self() -> None:
    own = IPv4Address("198.18.0.11")
    d = desired_ovs(intent(), frozenset({P13, own, IPv4Address("198.18.0.12")}))
    assert set(d.tunnels) == {IPv4Address("198.18.0.12"), P13}


def test_netdev_uplink_bridges() -> None:
    d = desired_ovs(intent(), uplink_macs={"eth1": "02:00:00:00:01:AB"})
    assert set(d.bridges) == {"br-tor", "br-eth1", "up2"}
    br1, up2 = d.bridges["br-eth1"], d.bridges["up2"]
    assert (br1.datapath_type, br1.fail_mode, br1.protocols) == ("netdev", None, ())
    assert dict(br1.other_config) == {HWADDR: "02:00:00:00:01:ab"}
    assert up2.other_config == () and up2.other_config_keys == frozenset()  # MAC unknown: left alone
    assert d.ports["br-eth1"].interface.mtu_request == 9000
    assert d.ports["up2"].interface.mtu_request == 9100
    assert d.ports["eth2"].bridge == "up2" and d.ports["eth2"].interface.type == ""


def test_system_datapath_has_no_uplink_bridges() -> None:
    d = desired_ovs(intent(**SYSTEM), uplink_macs=MACS)
    assert set(d.bridges) == {"br-tor"}
    assert "eth1" not in d.ports


def test_spine_wants_nothing() -> None:
    spine = intent(**{"node.role": "spine", "overlay": None, "controllers": None})
    assert desired_ovs(spine) == OvsDesired({}, {}, {})


# --- diff ------------------------------------------------------------------------------------------


def with_port(snap: OvsSnapshot, name: str, bridge: str, owned: bool) -> OvsSnapshot:
    """`snap` plus a port `name` on `bridge` (e.g. one made by hand)."""
    b = snap.bridges[bridge]
    return OvsSnapshot(
        {**snap.bridges, bridge: replace(b, ports=b.ports | {name})},
        {**snap.ports, name: PortState(name, owned, bridge, (name,))},
        {**snap.interfaces, name: InterfaceState(InterfaceSpec(name), owned, 7, None)},
    )


def test_from_empty_everything_is_added() -> None:
    d = desired_ovs(intent(), frozenset({P13}), MACS)
    plan = diff_overlay(d, OvsSnapshot({}, {}, {}))
    assert {a.spec.name for a in plan.actions if isinstance(a, AddBridge)} == set(d.bridges)
    assert {a.spec.name for a in plan.actions if isinstance(a, AddPort)} == set(d.ports)
    assert plan.unchanged == 0 and not plan.conflicts


def test_converged_is_a_no_op() -> None:
    d = desired_ovs(intent(), frozenset({P13}), MACS)
    plan = diff_overlay(d, snapshot_of(d))
    assert plan.actions == () and plan.conflicts == ()
    assert plan.unchanged == len(d.bridges) + len(d.ports)


def test_changed_tunnel_options_and_bridge_column() -> None:
    d = desired_ovs(intent(), frozenset({P13}), MACS)
    snap = snapshot_of(d)
    gre = snap.interfaces["gre-c612000d"]
    bad = replace(gre, spec=replace(gre.spec, options=(("remote_ip", "192.0.2.1"),)))
    br = replace(snap.bridges["br-tor"], fail_mode="standalone")
    snap = replace(snap, interfaces={**snap.interfaces, "gre-c612000d": bad}, bridges={**snap.bridges, "br-tor": br})
    plan = diff_overlay(d, snap)
    assert set(plan.actions) == {UpdatePort(d.ports["gre-c612000d"]), UpdateBridge(d.bridges["br-tor"])}


def test_unmanaged_other_config_keys_are_not_drift() -> None:
    d = desired_ovs(intent())
    snap = snapshot_of(d)
    br = snap.bridges["br-tor"]
    snap = replace(snap, bridges={**snap.bridges, "br-tor": replace(br, other_config=(*br.other_config, ("x", "y")))})
    assert diff_overlay(d, snap).actions == ()


def test_removed_peer_deletes_its_tunnel_only() -> None:
    before = desired_ovs(intent(), frozenset({P13, P14}))
    after = desired_ovs(intent(), frozenset({P13}))
    assert diff_overlay(after, snapshot_of(before)).actions == (DeletePort("gre-c612000e"),)


def test_foreign_port_on_our_bridge_is_left_alone() -> None:
    d = desired_ovs(intent())
    snap = with_port(snapshot_of(d), "hand0", "br-tor", owned=False)
    assert diff_overlay(d, snap).actions == ()


def test_name_clash_with_foreign_port_is_a_conflict() -> None:
    d = desired_ovs(intent(), frozenset({P99}))
    snap = with_port(snapshot_of(desired_ovs(intent())), "gre-c6120063", "br-tor", owned=False)
    plan = diff_overlay(d, snap)
    assert plan.actions == ()
    assert [(c.table, c.name) for c in plan.conflicts] == [("Port", "gre-c6120063")]


def test_foreign_bridge_blocks_its_ports() -> None:
    d = desired_ovs(intent(**SYSTEM))
    plan = diff_overlay(d, snapshot_of(d, owned=False))
    assert plan.actions == ()
    assert ("Bridge", "br-tor") in [(c.table, c.name) for c in plan.conflicts]
    assert len(plan.conflicts) == len(d.bridges) + len(d.ports)


def test_bridge_holding_foreign_ports_is_kept() -> None:
    d = desired_ovs(intent(**SYSTEM))
    snap = with_port(snapshot_of(d), "hand0", "br-tor", owned=False)
    plan = diff_overlay(OvsDesired({}, {}, {}), snap)
    assert DeleteBridge("br-tor") not in plan.actions
    assert {a for a in plan.actions if isinstance(a, DeletePort)} == {DeletePort(n) for n in d.ports}
    assert [c.name for c in plan.conflicts] == ["br-tor"]


def test_port_moved_to_another_bridge_is_changed() -> None:
    d = desired_ovs(intent(), uplink_macs=MACS)
    snap = snapshot_of(d)
    snap = replace(snap, ports={**snap.ports, "eth3": replace(snap.ports["eth3"], bridge="br-eth1")})
    assert diff_overlay(d, snap).actions == (UpdatePort(d.ports["eth3"]),)


@pytest.mark.parametrize("n", [1000])
def test_diff_scales_linearly(n: int) -> None:
    peers = frozenset(IPv4Address(int(IPv4Address("198.19.0.0")) + i) for i in range(n))
    d = desired_ovs(intent(), peers)
    assert len(d.ports) == n + 8  # + static peer, bridge port, 2 access, 2 uplinks x 2
    assert diff_overlay(d, snapshot_of(d)).actions == ()


# --- reconciler and loop, against in-memory fakes -------------------------------------------------


class FakeDriver:
    """A driver holding a snapshot in memory; `apply` records the actions and converges to `target`."""

    def __init__(self, snap: OvsSnapshot, target: OvsSnapshot | None = None) -> None:
        self.snap, self.target = snap, target or snap
        self.applied: list[tuple[Action, ...]] = []
        self.fail: OvsError | None = None
        self.failures: tuple[InterfaceFailure, ...] = ()

    def snapshot(self, full: bool = False) -> OvsSnapshot:
        if self.fail is not None:
            raise self.fail
        return self.snap

    def apply(self, actions: Sequence[Action]) -> ApplyResult:
        self.applied.append(tuple(actions))
        self.snap = self.target
        return ApplyResult(True, next_cfg=len(self.applied), failures=self.failures)


def test_reconciler_no_op_pass_does_not_apply() -> None:
    d = desired_ovs(intent())
    driver = FakeDriver(snapshot_of(d))
    report = OverlayReconciler(driver, d).run_once()
    assert driver.applied == [] and not report.wrote and report.error is None


def test_reconciler_applies_one_batch_and_reports_failures() -> None:
    d = desired_ovs(intent())
    driver = FakeDriver(OvsSnapshot({}, {}, {}), snapshot_of(d))
    driver.failures = (InterfaceFailure("eth3", -1, "could not open network device eth3"),)
    report = OverlayReconciler(driver, d).run_once()
    assert len(driver.applied) == 1 and len(driver.applied[0]) == len(d.bridges) + len(d.ports)
    assert report.wrote and [f.interface for f in report.failures] == ["eth3"]
    with pytest.raises(InterfaceError, match="interface eth3: could not open network device eth3"):
        report.raise_for_errors()


def test_reconciler_reports_driver_errors() -> None:
    driver = FakeDriver(OvsSnapshot({}, {}, {}))
    driver.fail = OvsdbUnavailable("unix:/x", "not connected (reconnecting)")
    report = OverlayReconciler(driver, desired_ovs(intent())).run_once()
    assert isinstance(report.error, OvsdbUnavailable) and driver.applied == []
    with pytest.raises(OvsdbUnavailable):
        report.raise_for_errors()


class FakeEvents:
    """An event source whose `generation` the test moves; `wait` honours the loop's wake-up pipe."""

    def __init__(self) -> None:
        self.generation = 0

    def run(self) -> None:
        pass

    def wait(self, timeout: float, fds: Sequence[int] = ()) -> None:
        select.select(list(fds), [], [], max(0.0, min(timeout, 0.01)))


def test_loop_passes_on_start_on_events_and_on_update() -> None:
    d = desired_ovs(intent())
    driver, events = FakeDriver(snapshot_of(d)), FakeEvents()
    reconciler = OverlayReconciler(driver, d)
    loop = OverlayLoop(reconciler, events, debounce=0.001, full_every=3600)
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        wait_until(lambda: loop.stats.full_passes == 1, 2, interval=0.001, what="the initial full pass")
        events.generation += 1
        wait_until(lambda: loop.stats.passes == 2, 2, interval=0.001, what="a pass after an OVSDB change")
        other = desired_ovs(intent(), frozenset({P13}))
        loop.update(other)
        wait_until(lambda: driver.applied, 2, interval=0.001, what="a pass after update()")
        assert reconciler.desired is other and loop.stats.full_passes == 1
        assert driver.applied == [(AddPort(other.ports["gre-c612000d"]),)]
    finally:
        loop.stop()
        thread.join(5)
        loop.close()
    assert not thread.is_alive()


def test_failures_of_untouched_interfaces_are_still_reported() -> None:
    d = desired_ovs(intent(), frozenset({P13}))
    snap = snapshot_of(d)
    broken = replace(snap.interfaces["eth4"], ofport=-1, error="could not open network device eth4")
    snap = replace(snap, interfaces={**snap.interfaces, "eth4": broken})
    more = desired_ovs(intent(), frozenset({P13, P14}))
    report = OverlayReconciler(FakeDriver(snap), more).run_once()
    assert report.wrote and [f.interface for f in report.failures] == ["eth4"]


def test_the_loops_own_repairs_wait_for_the_engine_lock_and_an_engine_update_does_not(tmp_path: Path) -> None:
    """One writer: the loop's own passes (the first full pass, a drift repair) run only under the engine lock,
    here held as `tor-agent apply` or the daemon's pass would hold it; a pass for an engine update runs at once
    (the engine that handed it holds the lock and waits for that pass)."""
    d = desired_ovs(intent())
    driver, events = FakeDriver(snapshot_of(d)), FakeEvents()
    lock = EngineLock(tmp_path / "engine.lock")
    loop = OverlayLoop(OverlayReconciler(driver, d), events, debounce=0.001, full_every=3600, lock=lock)
    thread = threading.Thread(target=loop.run)
    try:
        with lock.held():
            thread.start()
            events.generation += 1  # OVSDB changed: a repair is due, as is the first full pass
            wait_until(lambda: loop.stats.lock_waits >= 2, 2, interval=0.001, what="the loop to find the lock taken")
            other = desired_ovs(intent(), frozenset({P13}))
            loop.update(other)
            wait_until(lambda: driver.applied, 2, interval=0.001, what="the engine's update, under its lock")
            assert loop.stats.passes == 1 and driver.applied == [(AddPort(other.ports["gre-c612000d"]),)]
            events.generation += 1
        wait_until(lambda: loop.stats.passes > 1, 2, interval=0.001, what="the repair once the lock is free")
    finally:
        loop.stop()
        thread.join(5)
        loop.close()

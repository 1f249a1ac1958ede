"""The OVS driver and one reconcile pass against a real ovsdb-server + ovs-vswitchd (netdev datapath).

Every assertion reads OVSDB back with ovs-vsctl (or the kernel with iproute2), not with tor-agent's code.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address
from typing import Any

import pytest
from ovs_sandbox import OvsSandbox
from ovs_testlib import make_intent
from ovsdb_view import bridge_ports, by_name, optional, rows

from tor_agent.model.overlay import OWNER_KEY, OWNER_VALUE, OvsDesired, desired_ovs
from tor_agent.ovs.connection import OvsConnection
from tor_agent.ovs.errors import InterfaceError, OvsdbUnavailable, VswitchdTimeout
from tor_agent.reconcile.overlay import OverlayReconciler
from tor_agent.wait import wait_until

pytestmark = pytest.mark.ovs

MARK = {OWNER_KEY: OWNER_VALUE}
P12, P13, P99 = IPv4Address("198.18.0.12"), IPv4Address("198.18.0.13"), IPv4Address("198.18.0.99")
DISCOVERED = IPv4Address("198.18.0.20")


def add_veth(box: OvsSandbox, name: str) -> None:
    """A kernel port `name` in ovs-vswitchd's namespace (its peer stays unattached)."""
    box.netns_exec("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}-p")


def leaf(box: OvsSandbox, *discovered: IPv4Address, **edits: Any) -> OvsDesired:
    """The test leaf's desired rows; its uplink eth1 is created in the sandbox first."""
    if "eth1" not in box.netns_exec("ip", "-br", "link"):
        add_veth(box, "eth1")
    return desired_ovs(make_intent(**edits), frozenset(discovered))


def test_create_from_empty(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    add_veth(sandbox, "eth3")
    desired = leaf(sandbox, DISCOVERED, **{"overlay.access_ports": ["eth3"]})
    report = OverlayReconciler(conn, desired).run_once()
    report.raise_for_errors()
    assert report.wrote and report.result is not None and report.result.attempts == 1
    assert report.plan.summary().startswith(f"{len(desired.bridges) + len(desired.ports)} added")

    bridges = by_name(sandbox, "Bridge", "datapath_type", "protocols", "fail_mode", "other_config", "external_ids")
    assert set(bridges) == {"br-tor", "br-eth1"}
    tor = bridges["br-tor"]
    # (ovs-vsctl prints a set of one element bare)
    assert (tor["datapath_type"], tor["protocols"], tor["fail_mode"]) == ("netdev", "OpenFlow13", "secure")
    assert tor["other_config"] == {
        "datapath-id": "00000000000000a1",
        "disable-in-band": "true",
        "dp-desc": "leaf1",
        "dp-sn": "198.18.0.11",
    }
    assert all(b["external_ids"] == MARK for b in bridges.values())
    tunnels = ["gre-c612000c", "gre-c612000d", "gre-c6120014"]
    assert bridge_ports(sandbox, "br-tor") == ["eth3", *tunnels]
    assert bridge_ports(sandbox, "br-eth1") == ["eth1"]

    ifaces = by_name(sandbox, "Interface", "type", "options", "ofport", "ofport_request", "error", "external_ids")
    assert ifaces["gre-c6120014"]["type"] == "gre"
    assert ifaces["gre-c6120014"]["options"] == {"key": "100", "local_ip": "198.18.0.11", "remote_ip": "198.18.0.20"}
    assert ifaces["eth3"]["ofport"] == 1 == ifaces["eth3"]["ofport_request"]
    for name, iface in ifaces.items():
        assert iface["external_ids"] == MARK, name
        assert optional(iface["error"]) is None and iface["ofport"] > 0, (name, iface)
    assert all(p["external_ids"] == MARK for p in rows(sandbox, "Port", "external_ids"))
    # ovs-vswitchd applied the pinned DPID.
    assert "dpid:00000000000000a1" in sandbox.ofctl("show", "br-tor")


def test_second_pass_is_a_no_op(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    desired = leaf(sandbox, DISCOVERED)
    reconciler = OverlayReconciler(conn, desired)
    reconciler.run_once().raise_for_errors()
    sent, next_cfg = conn.transactions, sandbox.vsctl("get", "Open_vSwitch", ".", "next_cfg")
    for full in (False, True):
        report = reconciler.run_once(full=full)
        assert report.plan.actions == () and not report.wrote and report.error is None
        assert report.plan.unchanged == len(desired.bridges) + len(desired.ports)
    assert conn.transactions == sent
    assert sandbox.vsctl("get", "Open_vSwitch", ".", "next_cfg") == next_cfg


def test_peer_removed_only_its_tunnel_goes(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    reconciler = OverlayReconciler(conn, leaf(sandbox, DISCOVERED))
    reconciler.run_once().raise_for_errors()
    before = by_name(sandbox, "Port")
    reconciler.desired = leaf(sandbox)
    report = reconciler.run_once()
    assert report.plan.summary().startswith("0 added, 0 changed, 1 deleted")
    after = by_name(sandbox, "Port")
    assert set(before) - set(after) == {"gre-c6120014"}
    # The others were not deleted and re-added: same rows.
    assert all(after[n]["_uuid"] == before[n]["_uuid"] for n in after)
    assert "gre-c6120014" not in by_name(sandbox, "Interface")


def test_hand_edits_repaired_in_place(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    reconciler = OverlayReconciler(conn, leaf(sandbox))
    reconciler.run_once().raise_for_errors()
    uuid = by_name(sandbox, "Interface")["gre-c612000c"]["_uuid"]
    sandbox.vsctl("set", "Interface", "gre-c612000c", "options:remote_ip=192.0.2.1", "options:tos=inherit")
    sandbox.vsctl("set", "Bridge", "br-tor", "fail_mode=standalone", "other_config:forward-bpdu=true")
    sandbox.vsctl("remove", "Bridge", "br-tor", "other_config", "disable-in-band")
    conn.run()
    report = reconciler.run_once()
    assert report.plan.summary().startswith("0 added, 2 changed, 0 deleted")
    iface = by_name(sandbox, "Interface", "options")["gre-c612000c"]
    assert iface["_uuid"] == uuid
    assert iface["options"] == {"key": "100", "local_ip": "198.18.0.11", "remote_ip": "198.18.0.12"}
    bridge = by_name(sandbox, "Bridge", "fail_mode", "other_config")["br-tor"]
    assert bridge["fail_mode"] == "secure"
    assert bridge["other_config"] == {
        "datapath-id": "00000000000000a1",
        "disable-in-band": "true",
        "dp-desc": "leaf1",
        "dp-sn": "198.18.0.11",
        "forward-bpdu": "true",  # a key tor-agent does not manage stays
    }


@pytest.mark.parametrize("remote_ip", ["flow", "not-an-address", '""', "198.18.0.99"])
def test_an_owned_tunnel_with_a_hand_edited_remote_ip_is_repaired(
    sandbox: OvsSandbox, conn: OvsConnection, remote_ip: str
) -> None:
    """`options:remote_ip=flow` (or garbage) on a tunnel tor-agent owns: read without a traceback, repaired
    in place to the peer the port's name and owner mark say."""
    reconciler = OverlayReconciler(conn, leaf(sandbox))
    reconciler.run_once().raise_for_errors()
    uuid = by_name(sandbox, "Interface")["gre-c612000c"]["_uuid"]
    sandbox.vsctl("set", "Interface", "gre-c612000c", f"options:remote_ip={remote_ip}")
    conn.run()
    report = reconciler.run_once()
    report.raise_for_errors()
    iface = by_name(sandbox, "Interface", "options")["gre-c612000c"]
    assert iface["_uuid"] == uuid
    assert iface["options"] == {"key": "100", "local_ip": "198.18.0.11", "remote_ip": "198.18.0.12"}


def test_foreign_rows_are_never_touched(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    reconciler = OverlayReconciler(conn, leaf(sandbox))
    reconciler.run_once().raise_for_errors()
    sandbox.vsctl("add-port", "br-tor", "hand0", "--", "set", "Interface", "hand0", "type=internal")
    clash = "gre-c6120063"  # the name tor-agent would give a tunnel to P99
    sandbox.vsctl("add-port", "br-tor", clash, "--", "set", "Interface", clash, "type=gre", "options:remote_ip=1.2.3.4")
    conn.run()

    reconciler.desired = leaf(sandbox, P99)
    report = reconciler.run_once()
    assert [(c.table, c.name) for c in report.conflicts] == [("Port", clash)]
    assert report.plan.actions == ()
    iface = by_name(sandbox, "Interface", "options", "external_ids")[clash]
    assert iface["options"] == {"remote_ip": "1.2.3.4"} and iface["external_ids"] == {}

    # A spine wants nothing: owned rows go, the hand-made ports and the bridge holding them stay.
    reconciler.desired = desired_ovs(make_intent(**{"node.role": "spine", "overlay": None}))
    report = reconciler.run_once()
    assert [(c.table, c.name) for c in report.conflicts] == [("Bridge", "br-tor")]
    assert set(by_name(sandbox, "Bridge")) == {"br-tor"}
    assert bridge_ports(sandbox, "br-tor") == [clash, "hand0"]
    assert set(by_name(sandbox, "Port")) == {clash, "hand0"}  # even br-tor's own port was tor-agent's


def test_foreign_bridge_is_reported_not_modified(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    sandbox.vsctl("add-br", "br-tor", "--", "set", "Bridge", "br-tor", "datapath_type=netdev")
    conn.run()
    report = OverlayReconciler(conn, leaf(sandbox)).run_once()
    assert ("Bridge", "br-tor") in [(c.table, c.name) for c in report.conflicts]
    tor = by_name(sandbox, "Bridge", "fail_mode", "other_config", "external_ids")["br-tor"]
    assert (tor["fail_mode"], tor["other_config"], tor["external_ids"]) == ([], {}, {})
    assert bridge_ports(sandbox, "br-tor") == []
    assert bridge_ports(sandbox, "br-eth1") == ["eth1"]  # the rest still converges


def test_bfd_on_tunnels(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    tunnels = {"key": 100, "bfd": True, "peers": ["198.18.0.12"]}
    desired = leaf(sandbox, **{"overlay.tunnels": tunnels, "underlay.ospf.bfd": {"rx_ms": 100, "tx_ms": 100}})
    OverlayReconciler(conn, desired).run_once().raise_for_errors()
    iface = by_name(sandbox, "Interface", "bfd", "bfd_status")["gre-c612000c"]
    assert iface["bfd"] == {"enable": "true", "min_rx": "100", "min_tx": "100"}
    # ovs-vswitchd runs BFD on it (the peer does not exist here, so the session is not up).
    assert iface["bfd_status"].get("state") in {"down", "init", "admin_down"}


def test_key_mode_change_is_an_in_place_update_that_keeps_port_numbers_and_flows(
    sandbox: OvsSandbox, conn: OvsConnection
) -> None:
    """`tunnels.key: 100` -> `flow` -> absent: each a normal pass that updates the tunnels' options in place; the
    OpenFlow port numbers (and so a controller's flows naming them) stay."""
    reconciler = OverlayReconciler(conn, leaf(sandbox))
    reconciler.run_once().raise_for_errors()
    before = by_name(sandbox, "Interface", "ofport")
    flow = "cookie=0x5,priority=5,in_port=gre-c612000c,actions=output:gre-c612000d"
    sandbox.ofctl("add-flow", "br-tor", flow)
    for key, want in (("flow", "flow"), (None, None)):
        reconciler.desired = leaf(sandbox, **{"overlay.tunnels.key": key})
        report = reconciler.run_once()
        report.raise_for_errors()
        assert report.plan.summary().startswith("0 added, 2 changed, 0 deleted"), (key, report.plan.summary())
        after = by_name(sandbox, "Interface", "ofport", "options")
        for name in ("gre-c612000c", "gre-c612000d"):
            assert after[name]["options"].get("key") == want, after[name]
            assert (after[name]["_uuid"], after[name]["ofport"]) == (before[name]["_uuid"], before[name]["ofport"])
        assert "cookie=0x5," in sandbox.ofctl("dump-flows", "br-tor", "cookie=0x5/-1")
        assert not reconciler.run_once().plan.actions  # and the next pass has nothing to do


def test_interface_error_is_a_typed_error_naming_it(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    desired = leaf(sandbox, **{"overlay.access_ports": ["eth9"]})  # no such device
    report = OverlayReconciler(conn, desired).run_once()
    assert report.error is None and report.result is not None
    assert [f.interface for f in report.result.failures] == ["eth9"]
    assert [f.interface for f in report.failures] == ["eth9"]
    with pytest.raises(InterfaceError, match=r"interface eth9: .*No such device") as e:
        report.raise_for_errors()
    assert e.value.failures[0].ofport == -1


def test_vswitchd_down_is_a_typed_error(sandbox: OvsSandbox) -> None:
    sandbox.stop_daemon("ovs-vswitchd")
    with OvsConnection.open(sandbox.remote, vswitchd_timeout=0.3) as conn:
        report = OverlayReconciler(conn, leaf(sandbox)).run_once()
    assert isinstance(report.error, VswitchdTimeout)
    assert re.search(r"did not apply configuration 1 within 0.3s", str(report.error))
    assert "br-tor" in by_name(sandbox, "Bridge")  # the database holds the state for when it returns


def test_unreachable_database_is_a_typed_error(tmp_path: object) -> None:
    with pytest.raises(OvsdbUnavailable, match="cannot connect"):
        OvsConnection.open(f"unix:{tmp_path}/nothing.sock", timeout=0.2)


def test_uninitialised_database_gets_its_root_row() -> None:
    """`ovs-vsctl init` never ran and ovs-vswitchd (which would create the row) is not up yet."""
    box = OvsSandbox(init=False)
    try:
        box.start(vswitchd=False)
        with OvsConnection.open(box.remote) as conn:  # (ovs-vsctl would wait for the row: not used before)
            report = OverlayReconciler(conn, leaf(box)).run_once()
        assert report.error is None and report.wrote
        assert len(rows(box, "Open_vSwitch")) == 1
        assert bridge_ports(box, "br-tor") == ["gre-c612000c", "gre-c612000d"]
        box.start_vswitchd()

        def set_up() -> bool:
            return all(isinstance(i["ofport"], int) and i["ofport"] > 0 for i in rows(box, "Interface", "ofport"))

        wait_until(set_up, 10, what="ovs-vswitchd's ofports")
    finally:
        box.stop()

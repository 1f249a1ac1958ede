"""Userspace datapath uplinks (docs/design.md §8): each uplink is an OVS bridge holding the physical port, whose
internal port carries the uplink's MTU and the physical port's MAC. Checked in the kernel with iproute2.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ovs_sandbox import OvsSandbox
from ovs_testlib import make_intent
from ovsdb_view import bridge_ports, by_name

from tor_agent.model.overlay import desired_ovs
from tor_agent.ovs.connection import OvsConnection
from tor_agent.reconcile.overlay import OverlayReconciler
from tor_agent.wait import wait_until

pytestmark = pytest.mark.ovs

UPLINKS = [{"name": "eth1", "unnumbered": True, "mtu": 9000}, {"name": "eth2", "unnumbered": True, "mtu": 8000}]


def link(box: OvsSandbox, name: str) -> dict[str, Any]:
    """`ip -j link show <name>` inside ovs-vswitchd's namespace."""
    (found,) = json.loads(box.netns_exec("ip", "-j", "link", "show", "dev", name))
    return dict(found)


def test_uplink_bridges_get_mtu_and_mac(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    for name, mtu in (("eth1", "9000"), ("eth2", "8000")):
        sandbox.netns_exec("ip", "link", "add", name, "mtu", mtu, "type", "veth", "peer", "name", f"{name}-p")
    # The caller reads the physical ports' MACs from the kernel and hands them to the model.
    macs = {name: link(sandbox, name)["address"] for name in ("eth1", "eth2")}
    desired = desired_ovs(make_intent(**{"underlay.uplinks": UPLINKS}), uplink_macs=macs)
    reconciler = OverlayReconciler(conn, desired)
    reconciler.run_once().raise_for_errors()

    bridges = by_name(sandbox, "Bridge", "datapath_type", "other_config", "fail_mode")
    assert set(bridges) == {"br-tor", "br-eth1", "br-eth2"}
    for name in ("eth1", "eth2"):
        bridge = bridges[f"br-{name}"]
        assert bridge["datapath_type"] == "netdev" and bridge["fail_mode"] == []
        assert bridge["other_config"] == {"hwaddr": macs[name]}
        assert bridge_ports(sandbox, f"br-{name}") == [name]
    ifaces = by_name(sandbox, "Interface", "mtu_request", "ofport", "error")
    assert (ifaces["br-eth1"]["mtu_request"], ifaces["br-eth2"]["mtu_request"]) == (9000, 8000)
    assert all(i["ofport"] > 0 and i["error"] == [] for i in ifaces.values())

    # ovs-vswitchd applied both to the kernel side of the internal ports.
    def applied() -> bool:
        for name, mtu in (("eth1", 9000), ("eth2", 8000)):
            port = link(sandbox, f"br-{name}")
            if (port["address"], port["mtu"]) != (macs[name], mtu):
                return False
        return True

    wait_until(applied, 5, interval=0.02, what="uplink bridge ports with the uplinks' MAC and MTU")
    assert not reconciler.run_once().wrote


def test_unknown_mac_leaves_hwaddr_alone(sandbox: OvsSandbox, conn: OvsConnection) -> None:
    sandbox.netns_exec("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1-p")
    intent = make_intent()
    OverlayReconciler(conn, desired_ovs(intent, uplink_macs={"eth1": "02:00:00:00:00:01"})).run_once()
    # The kernel port vanished for a moment: no MAC this pass. hwaddr is neither changed nor removed.
    report = OverlayReconciler(conn, desired_ovs(intent, uplink_macs={})).run_once()
    assert not report.wrote
    assert by_name(sandbox, "Bridge", "other_config")["br-eth1"]["other_config"] == {"hwaddr": "02:00:00:00:00:01"}

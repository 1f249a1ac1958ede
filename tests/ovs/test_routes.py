"""OVS's route table driven over ovs-vswitchd's unixctl socket against a real ovs-vswitchd (tor_agent.ovs.routes)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from ovs_sandbox import OvsSandbox

from tor_agent.ovs.routes import Nexthop, OvsRoute, OvsRouteTable, RouteTableError, deaf_bridges, plan_routes

pytestmark = pytest.mark.ovs

A = Nexthop("br-eth1", IPv4Address("198.18.1.0"))
B = Nexthop("br-eth2", IPv4Address("198.18.1.2"))
BRIDGES = ("br-eth1", "br-eth2")
VTEPS = [IPv4Address(f"198.18.0.{i}") for i in range(12, 20)]


def uplinks(box: OvsSandbox) -> OvsRouteTable:
    """Two uplink bridges with link addresses and the VTEP, as a netdev leaf has them, and a GRE port (OVS
    terminates tunnels only while one exists)."""
    for name, address in (("br-eth1", "198.18.1.1/31"), ("br-eth2", "198.18.1.3/31")):
        box.vsctl("add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev")
        box.netns_exec("ip", "address", "add", address, "dev", name)
        box.netns_exec("ip", "address", "add", "198.18.0.11/32", "dev", name)
        box.netns_exec("ip", "link", "set", name, "up")
    box.vsctl("add-br", "br-tor", "--", "set", "Bridge", "br-tor", "datapath_type=netdev",
              "--", "add-port", "br-tor", "gre-1", "--", "set", "Interface", "gre-1", "type=gre",
              "options:remote_ip=198.18.0.12")  # fmt: skip
    return OvsRouteTable(target=box.ctl("ovs-vswitchd"))


def user_routes(table: OvsRouteTable) -> dict[IPv4Network, OvsRoute]:
    return {r.prefix: r for r in table.show() if r.user}


def test_apply_moves_and_deletes_and_second_plan_is_empty(sandbox: OvsSandbox) -> None:
    table = uplinks(sandbox)
    wanted = {v: [A, B] for v in VTEPS}
    first = plan_routes(wanted, table.show(), BRIDGES)
    result = table.apply(first)
    assert not result.errors and len(result.applied) == len(VTEPS)
    assert set(user_routes(table).values()) == set(first.add)
    assert not plan_routes(wanted, table.show(), BRIDGES)

    moved = plan_routes({v: [B] for v in VTEPS[:4]}, table.show(), BRIDGES)  # A died; half the VTEPs gone
    table.apply(moved)
    after = user_routes(table)
    (anchor,) = moved.kept  # the last route over br-eth1 stays (OVS 3.1 forgets a bridge's tunnels on a delete)
    assert anchor.nexthop == A and set(after) == {IPv4Network(f"{v}/32") for v in VTEPS[:4]} | {anchor.prefix}
    assert all(r.nexthop == B for p, r in after.items() if p != anchor.prefix)


def test_a_hundred_vteps_move_in_one_batch_with_a_refusal_in_the_middle(sandbox: OvsSandbox) -> None:
    """ovs-vswitchd answers the pipelined commands of one apply in order, each on its own."""
    table = uplinks(sandbox)
    vteps = [IPv4Address(int(IPv4Address("198.19.0.1")) + i) for i in range(100)]
    table.apply(plan_routes({v: [A] for v in vteps}, table.show(), BRIDGES))
    bad = Nexthop("br-eth2", IPv4Address("10.9.9.9"))  # no route to this gateway: refused
    wanted = {v: [bad] if v == vteps[50] else [B] for v in vteps}
    result = table.apply(plan_routes(wanted, table.show(), BRIDGES))
    assert len(result.applied) == 99 and len(result.errors) == 1
    assert str(vteps[50]) in str(result.errors[0]) and "Error while inserting route" in str(result.errors[0])
    after = user_routes(table)
    assert after[IPv4Network(f"{vteps[50]}/32")].nexthop == A  # refused: left as it was
    assert all(after[IPv4Network(f"{v}/32")].nexthop == B for v in vteps if v != vteps[50])


def macs(box: OvsSandbox) -> dict[str, str]:
    return {b: box.netns_exec("cat", f"/sys/class/net/{b}/address").strip() for b in BRIDGES}


def test_a_route_delete_does_not_leave_its_bridge_deaf_to_tunnels(sandbox: OvsSandbox) -> None:
    """OVS 3.1 drops a bridge from its tunnel termination table on any route delete over it: the plan's
    re-insert must bring it back (raw OVS, without the re-insert, stays deaf)."""
    table = uplinks(sandbox)
    vtep = IPv4Address("198.18.0.11")
    over_b = {VTEPS[0]: [B], VTEPS[1]: [B]}
    table.apply(plan_routes(over_b, table.show(), BRIDGES))
    assert deaf_bridges(table.terminating(), macs(sandbox), vtep) == frozenset()
    sandbox.appctl("ovs-vswitchd", "ovs/route/del", f"{VTEPS[1]}/32")  # what a plain delete does to OVS 3.1
    assert deaf_bridges(table.terminating(), macs(sandbox), vtep) == {"br-eth2"}
    table.apply(plan_routes(over_b, table.show(), BRIDGES, deaf=("br-eth2",)))
    assert deaf_bridges(table.terminating(), macs(sandbox), vtep) == frozenset()
    table.apply(plan_routes({VTEPS[0]: [B]}, table.show(), BRIDGES))  # VTEPS[1] gone: deleted, then re-insert
    assert deaf_bridges(table.terminating(), macs(sandbox), vtep) == frozenset()
    assert set(user_routes(table)) == {IPv4Network(f"{VTEPS[0]}/32")}


def test_foreign_user_route_survives(sandbox: OvsSandbox) -> None:
    table = uplinks(sandbox)
    sandbox.vsctl("add-br", "br-other", "--", "set", "Bridge", "br-other", "datapath_type=netdev")
    sandbox.netns_exec("ip", "address", "add", "10.0.0.1/24", "dev", "br-other")
    sandbox.netns_exec("ip", "link", "set", "br-other", "up")
    sandbox.appctl("ovs-vswitchd", "ovs/route/add", "10.9.0.0/16", "br-other", "10.0.0.254")
    table.apply(plan_routes({VTEPS[0]: [A], VTEPS[1]: [A]}, table.show(), BRIDGES))
    table.apply(plan_routes({VTEPS[1]: [A]}, table.show(), BRIDGES))
    assert set(user_routes(table)) == {IPv4Network("10.9.0.0/16"), IPv4Network(f"{VTEPS[1]}/32")}


def test_routes_come_back_after_vswitchd_restart(sandbox: OvsSandbox) -> None:
    table = uplinks(sandbox)
    wanted = {v: [A, B] for v in VTEPS}
    table.apply(plan_routes(wanted, table.show(), BRIDGES))
    sandbox.restart_vswitchd()
    for name, address in (("br-eth1", "198.18.1.1/31"), ("br-eth2", "198.18.1.3/31")):  # taps may be new
        sandbox.netns_exec("ip", "address", "replace", address, "dev", name)
        sandbox.netns_exec("ip", "link", "set", name, "up")
    assert not user_routes(table)  # user routes die with ovs-vswitchd
    again = plan_routes(wanted, table.show(), BRIDGES)
    assert len(again.add) == len(VTEPS)
    table.apply(again)
    assert len(user_routes(table)) == len(VTEPS) and not plan_routes(wanted, table.show(), BRIDGES)


def test_refused_route_is_reported_and_the_rest_applied(sandbox: OvsSandbox) -> None:
    table = uplinks(sandbox)
    bad = Nexthop("br-eth1", IPv4Address("10.9.9.9"))  # no route to this gateway
    result = table.apply(plan_routes({VTEPS[0]: [bad], VTEPS[1]: [A]}, (), BRIDGES))
    assert result.applied == (f"route {VTEPS[1]}/32 dev {A}",)
    assert len(result.errors) == 1 and "Error while inserting route" in str(result.errors[0])


def test_unreachable_vswitchd_raises(sandbox: OvsSandbox) -> None:
    with pytest.raises(RouteTableError, match="not reachable"):
        OvsRouteTable(target=str(sandbox.base / "no-such.ctl")).show()

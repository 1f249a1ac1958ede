"""Overlay health (tor_agent.health.overlay) over state built in memory: per peer port, ofport, BFD, route;
what verify calls missing or broken; and parsing `ovs-appctl bfd/show`."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import yaml
from test_engine import ECMP, LEAF, intent, ospf

from tor_agent.config import Intent, load_text
from tor_agent.health.overlay import (
    OverlayState,
    TunnelRow,
    check_overlay,
    judge_overlay,
    overlay_lines,
    overlay_status,
    verify_line,
)
from tor_agent.net import KernelNexthop, KernelRoute
from tor_agent.ovs.errors import OvsdbUnavailable
from tor_agent.ovs.routes import OvsRoute, parse_bfd_show

PEER = IPv4Address("198.18.0.12")
PORT = "gre-c612000c"
ROUTE = OvsRoute(IPv4Network("198.18.0.12/32"), "br-eth1", IPv4Address("198.18.1.0"))


def state(
    rows: tuple[TunnelRow, ...] = (TunnelRow(PORT, PEER, True, 3, None, "100"),),
    bfd: dict[str, str] | None = None,
    routes: tuple[OvsRoute, ...] = (ROUTE,),
    kernel: tuple[KernelRoute, ...] = (ospf("198.18.0.12", *ECMP),),
) -> OverlayState:
    return OverlayState(rows, {PORT: "up"} if bfd is None else bfd, routes, kernel)


def problems(st: OverlayState, **kw: object) -> list[str]:
    status = overlay_status(intent(**kw), st)  # type: ignore[arg-type]
    assert status is not None
    return [str(p) for p in judge_overlay(status)]


def test_healthy_tunnel_has_its_port_ofport_bfd_and_route() -> None:
    status = overlay_status(intent(), state())
    assert status is not None and judge_overlay(status) == []
    (t,) = status.tunnels
    assert (t.port, t.ofport, t.bfd, t.uplink, t.expected) == (PORT, 3, "up", "br-eth1", True)
    doc = t.as_json()
    assert doc["ovs_route"] == "198.18.0.12/32 dev br-eth1 via 198.18.1.0"
    assert doc["underlay_route"] == "198.18.0.12/32 via 198.18.1.0 dev br-eth1, 198.18.1.2 dev br-eth2"
    assert verify_line("leaf1", status, []) == ["leaf1: overlay healthy: 1 tunnel(s) up, GRE key 100"]
    assert overlay_lines(status, [])[0] == "overlay br-tor (netdev, GRE key 100), tunnels (port, ofport, BFD, route):"
    assert overlay_lines(status, [])[1].startswith(f"  {PEER}: {PORT} ofport 3 BFD up, OVS route 198.18.0.12/32")
    assert (status.as_json()["key"], doc["key"]) == (100, "100")


def with_key(key: object) -> Intent:
    doc = yaml.safe_load(yaml.safe_dump(LEAF))
    if key is None:
        del doc["overlay"]["tunnels"]["key"]
    else:
        doc["overlay"]["tunnels"]["key"] = key
    return load_text(yaml.safe_dump(doc))


def test_status_and_verify_show_the_key_mode() -> None:
    flow = overlay_status(with_key("flow"), state(rows=(TunnelRow(PORT, PEER, True, 3, None, "flow"),)))
    assert flow is not None and judge_overlay(flow) == []
    assert flow.as_json()["key"] == "flow" and flow.tunnels[0].as_json()["key"] == "flow"
    assert verify_line("leaf1", flow, []) == [
        "leaf1: overlay healthy: 1 tunnel(s) up, GRE key flow (set per packet by the controller)"
    ]
    none = overlay_status(with_key(None), state(rows=(TunnelRow(PORT, PEER, True, 3, None),)))
    assert none is not None and judge_overlay(none) == [] and none.as_json()["key"] is None
    assert overlay_lines(none, [])[0].startswith("overlay br-tor (netdev, GRE without key), tunnels")


def test_a_tunnel_with_another_key_than_the_intent_is_degraded() -> None:
    """A tunnel keyed 100 while the intent says `flow` (or no key) cannot talk to peers that follow the intent."""
    assert problems(state()) == []
    st = state(rows=(TunnelRow(PORT, PEER, True, 3, None, "flow"),))
    assert problems(st) == [f"tunnel {PORT} to {PEER}: GRE key flow, the intent wants 100 (tunnels.key)"]
    found = overlay_status(with_key(None), state())
    assert found is not None
    assert [str(p) for p in judge_overlay(found)] == [
        f"tunnel {PORT} to {PEER}: GRE key 100, the intent wants none (tunnels.key)"
    ]


def test_missing_tunnel() -> None:
    assert problems(state(rows=())) == [
        f"tunnel - to {PEER}: missing: the peer has an underlay route but no tunnel port"
    ]


def test_interface_not_set_up() -> None:
    rows = (TunnelRow(PORT, PEER, True, -1, "could not add network device"),)
    assert problems(state(rows=rows)) == [
        f"tunnel {PORT} to {PEER}: not set up by ovs-vswitchd (ofport -1, could not add network device)"
    ]


def test_bfd_down_only_matters_with_bfd_on() -> None:
    assert problems(state(bfd={PORT: "down"})) == [f"tunnel {PORT} to {PEER}: BFD down"]
    status = overlay_status(intent(), state(bfd={}))
    assert status is not None and status.tunnels[0].bfd is None


def test_netdev_needs_an_ovs_route_over_a_live_nexthop() -> None:
    assert "no OVS route over an uplink bridge" in problems(state(routes=()))[0]
    dead = KernelRoute(IPv4Network("198.18.0.12/32"), "ospf", (KernelNexthop(IPv4Address("198.18.1.2"), "br-eth2"),))
    assert (
        "uses a nexthop the kernel does not have (live: 198.18.1.2 dev br-eth2)" in problems(state(kernel=(dead,)))[0]
    )


def test_system_datapath_needs_no_ovs_route() -> None:
    kernel = (ospf("198.18.0.12", ("198.18.1.0", "eth1")),)
    assert problems(state(routes=(), kernel=kernel), datapath="system") == []


def test_tunnel_to_a_peer_without_route_is_reported() -> None:
    assert problems(state(kernel=())) == [
        f"tunnel {PORT} to {PEER}: tor-agent keeps no tunnel to it (not a peer: neither static nor an OSPF /32 in "
        "the discovery prefix) but the port exists"
    ]
    static = problems(state(kernel=()), peers=("198.18.0.12",))
    assert static == [
        f"tunnel {PORT} to {PEER}: tor-agent keeps no tunnel to it (no underlay route with a live nexthop) "
        "but the port exists"
    ]


def test_spine_has_no_overlay_section_and_unreadable_ovsdb_is_a_problem() -> None:
    assert check_overlay(intent(spine=True), lambda: state()) == (None, [])

    def unreadable() -> OverlayState:
        raise OvsdbUnavailable("unix:/run/openvswitch/db.sock", "cannot connect")

    status, found = check_overlay(intent(), unreadable)
    assert status is None and [p.kind for p in found] == ["read"]
    assert "cannot read the overlay: ovsdb-server at unix:" in str(found[0])


BFD_SHOW = """---- gre-c612000c ----
  Forwarding: true
  Local Flags: none
  Local Session State: up
  Remote Session State: up
---- gre-c612000d ----
  Local Session State: down
  Remote Session State: init
"""


def test_parse_bfd_show() -> None:
    assert parse_bfd_show(BFD_SHOW) == {"gre-c612000c": "up", "gre-c612000d": "down"}
    assert parse_bfd_show("") == {}

"""Parsers of FRR 8.4's `show ... json` (tor_agent.health.frr_state), on recorded output and edge cases."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from tor_agent.health.frr_state import (
    BfdPeer,
    FrrOutputError,
    Nexthop,
    OspfNeighbor,
    parse_bfd_peers,
    parse_ospf_neighbors,
    parse_ospf_routes,
    parse_zebra_routes,
)

DATA = Path(__file__).resolve().parent / "data" / "health"


def sample(scenario: str, name: str) -> Any:
    return json.loads((DATA / scenario / name).read_text())


def test_ospf_neighbors() -> None:
    neighbors = parse_ospf_neighbors(sample("leaf1-eth2-silent", "ospf-neighbors.json"))
    by_if = {n.ifname: n for n in neighbors}
    assert by_if["eth1"].full and by_if["eth1"].router_id == IPv4Address("198.18.0.1")
    assert by_if["eth1"].uptime_ms is not None and by_if["eth1"].uptime_ms > 0
    assert by_if["eth2"].state.startswith("Init") and not by_if["eth2"].full
    assert parse_ospf_neighbors({"neighbors": {}}) == ()


def test_bfd_peers_skip_multihop_and_ipv6() -> None:
    peers = parse_bfd_peers(sample("leaf1-healthy", "bfd-peers.json"))
    found = {(str(p.peer), p.ifname, p.up) for p in peers}
    assert found == {("198.18.1.0", "eth1", True), ("198.18.1.2", "eth2", True)}
    extra = [
        {"multihop": True, "peer": "198.18.0.12", "status": "up"},
        {"multihop": False, "peer": "fe80::1", "interface": "eth1", "status": "up"},
        {"multihop": False, "peer": "198.18.1.4", "interface": "eth3", "status": "down", "diagnostic": "ok"},
    ]
    assert parse_bfd_peers(extra) == (BfdPeer(IPv4Address("198.18.1.4"), "eth3", "down", None, "ok"),)


def test_ospf_routes_attached_and_router_entries() -> None:
    routes = parse_ospf_routes(sample("spine1-healthy", "ospf-routes.json"))
    assert routes[IPv4Network("198.18.0.1/32")] == (Nexthop("lo"),)
    assert routes[IPv4Network("198.18.0.2/32")] == (
        Nexthop("eth1", IPv4Address("198.18.1.1")),
        Nexthop("eth2", IPv4Address("198.18.0.12")),
    )
    router = {"198.18.0.9": {"routeType": "R ", "cost": 10, "nexthops": [{"ip": "198.18.1.1", "via": "eth1"}]}}
    assert parse_ospf_routes(router) == {}


def test_zebra_routes_keep_the_selected_route_and_its_fib_nexthops() -> None:
    routes = parse_zebra_routes(sample("leaf2-healthy", "zebra-routes.json"))
    route = routes[IPv4Network("198.18.0.11/32")]
    assert route.protocol == "ospf" and route.installed
    assert route.nexthops == (Nexthop("eth1", IPv4Address("198.18.0.1")), Nexthop("eth2", IPv4Address("198.18.0.2")))
    doc = {"198.18.0.12/32": [
        {"protocol": "static", "selected": False, "nexthops": [
            {"ip": "192.0.2.1", "interfaceName": "eth9", "fib": True},
        ]},
        {"protocol": "ospf", "selected": True, "installed": True, "nexthops": [
            {"ip": "198.18.1.0", "interfaceName": "eth1", "fib": True},
            {"ip": "198.18.1.2", "interfaceName": "eth2", "active": True},
        ]},
    ]}  # fmt: skip
    assert parse_zebra_routes(doc)[IPv4Network("198.18.0.12/32")].nexthops == (
        Nexthop("eth1", IPv4Address("198.18.1.0")),
    )


@pytest.mark.parametrize(
    ("parse", "doc", "command"),
    [
        (parse_ospf_neighbors, {"neighbours": {}}, "show ip ospf neighbor json"),
        (parse_ospf_neighbors, {"neighbors": {"198.18.0.1": [{"state": "Full/-"}]}}, "show ip ospf neighbor json"),
        (parse_bfd_peers, [{"peer": "198.18.1.0"}], "show bfd peers json"),
        (parse_ospf_routes, [], "show ip ospf route json"),
        (parse_zebra_routes, {"198.18.0.12/32": {"selected": True}}, "show ip route json"),
    ],
)
def test_unexpected_shapes_name_the_command(parse: Any, doc: Any, command: str) -> None:
    with pytest.raises(FrrOutputError) as e:
        parse(doc)
    assert f"`{command}`: unexpected output" in str(e.value) and e.value.exit_code == 1


def test_neighbor_full_is_the_state_before_the_role() -> None:
    n = OspfNeighbor(IPv4Address("198.18.0.1"), IPv4Address("198.18.1.0"), "eth1", "Full/DR", 10)
    assert n.full and not OspfNeighbor(n.router_id, n.address, "eth1", "ExStart/-", None).full

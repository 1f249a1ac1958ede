"""Kernel route dumps with multipath nexthops (a lookup would show only one), in a namespace the test creates."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network

from nsutil import Netns

from tor_agent.net import KernelNexthop, KernelRoute, kernel_routes, longest_match

MakeNetns = Callable[[str], Netns]


def _setup(ns: Netns) -> None:
    ns.veth_uplinks({"eth1": "198.18.1.1/31", "eth2": "198.18.1.3/31"})


def test_multipath_route_lists_every_nexthop(make_netns: MakeNetns) -> None:
    ns = make_netns("leaf")
    _setup(ns)
    ns.ip(
        "route", "add", "198.18.0.12/32", "proto", "ospf", "metric", "20",
        "nexthop", "via", "198.18.1.0", "dev", "eth1",
        "nexthop", "via", "198.18.1.2", "dev", "eth2",
    )  # fmt: skip
    ns.ip("route", "add", "198.18.0.0/24", "via", "198.18.1.0", "dev", "eth1")
    routes = ns.run(kernel_routes)
    ecmp = longest_match(routes, IPv4Address("198.18.0.12"))
    assert ecmp == KernelRoute(
        prefix=IPv4Network("198.18.0.12/32"),
        protocol="ospf",
        nexthops=(
            KernelNexthop(IPv4Address("198.18.1.0"), "eth1"),
            KernelNexthop(IPv4Address("198.18.1.2"), "eth2"),
        ),
        metric=20,
    )
    covering = longest_match(routes, IPv4Address("198.18.0.13"))
    assert covering is not None and covering.prefix == IPv4Network("198.18.0.0/24")
    assert covering.live_nexthops() == (KernelNexthop(IPv4Address("198.18.1.0"), "eth1"),)
    connected = longest_match(routes, IPv4Address("198.18.1.2"))
    assert connected is not None and connected.protocol == "kernel" and connected.nexthops[0].gateway is None
    assert longest_match(routes, IPv4Address("203.0.113.1")) is None


def test_nexthop_on_a_link_without_carrier_is_not_live(make_netns: MakeNetns) -> None:
    ns = make_netns("leaf")
    _setup(ns)
    ns.ip(
        "route", "add", "198.18.0.12/32",
        "nexthop", "via", "198.18.1.0", "dev", "eth1",
        "nexthop", "via", "198.18.1.2", "dev", "eth2",
    )  # fmt: skip
    ns.ip("link", "set", "p-eth2", "down")  # carrier lost on eth2: the kernel marks the nexthop linkdown
    route = longest_match(ns.run(kernel_routes), IPv4Address("198.18.0.12"))
    assert route is not None
    assert [(nh.ifname, nh.live) for nh in route.nexthops] == [("eth1", True), ("eth2", False)]
    assert len(route.live_nexthops()) == 1

"""The plain rtnetlink dumps (tor_agent.net.rtnl) read what pyroute2 reads, in a namespace the test creates:
interfaces with flags, MTU, MAC and IPv4 addresses, and the main table's routes with multipath nexthops."""

from __future__ import annotations

import socket
from collections.abc import Callable
from ipaddress import IPv4Interface
from typing import Any

from nsutil import Netns

from tor_agent.net import rtnl
from tor_agent.net.netlink import Netlink, kernel_routes

MakeNetns = Callable[[str], Netns]


def _both() -> tuple[Any, Any]:
    """What the dumps read, and the same fields as pyroute2 decodes them."""
    from tor_agent.net.iproute import IPRoute

    ours = (
        {(r.index, r.name, r.flags, r.mtu, r.mac) for r in rtnl.links()},
        {i: frozenset(a) for i, a in rtnl.addresses().items()},
        sorted(map(str, kernel_routes())),
        Netlink().links(),
    )
    with IPRoute() as ipr:
        theirs_links = {
            (m["index"], m.get_attr("IFLA_IFNAME"), m["flags"], m.get_attr("IFLA_MTU"),
             str(m.get_attr("IFLA_ADDRESS")).lower() if m.get_attr("IFLA_ADDRESS") else None)
            for m in ipr.get_links()
        }  # fmt: skip
        theirs_addresses: dict[int, set[IPv4Interface]] = {}
        for m in ipr.get_addr(family=socket.AF_INET):
            local = m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")
            theirs_addresses.setdefault(m["index"], set()).add(IPv4Interface(f"{local}/{m['prefixlen']}"))
        theirs_routes = len(
            [m for m in ipr.route("dump", family=socket.AF_INET) if (m.get_attr("RTA_TABLE") or m["table"]) == 254]
        )
    return ours, (theirs_links, {i: frozenset(a) for i, a in theirs_addresses.items()}, theirs_routes)


def test_the_dumps_read_what_pyroute2_reads(make_netns: MakeNetns) -> None:
    ns = make_netns("rtnl")
    ns.ip("link", "set", "lo", "up")
    for i, name in enumerate(("eth1", "eth2", "eth3")):
        ns.ip("link", "add", name, "mtu", str(1500 + 1000 * i), "type", "veth", "peer", "name", f"p-{name}")
        ns.ip("address", "add", f"198.18.1.{2 * i + 1}/31", "dev", name)
        ns.ip("link", "set", name, "up")
        ns.ip("link", "set", f"p-{name}", "up")
    ns.ip("address", "add", "198.18.0.11/32", "dev", "lo")
    ns.ip("address", "add", "192.0.2.1/24", "dev", "eth3")
    ns.ip("route", "add", "198.18.0.12/32", "proto", "ospf", "metric", "20",
          "nexthop", "via", "198.18.1.0", "dev", "eth1", "nexthop", "via", "198.18.1.2", "dev", "eth2")  # fmt: skip
    ns.ip("route", "add", "198.18.9.0/24", "via", "198.18.1.4", "dev", "eth3", "table", "100")  # not main
    (links, addresses, routes, nl_links), (their_links, their_addresses, their_routes) = ns.run(_both)
    assert links == their_links and addresses == their_addresses and len(routes) == their_routes
    assert nl_links["eth2"].mtu == 2500 and nl_links["eth3"].addresses == {
        IPv4Interface("198.18.1.5/31"),
        IPv4Interface("192.0.2.1/24"),
    }
    assert any("198.18.0.12/32" in r and "eth2" in r for r in routes)

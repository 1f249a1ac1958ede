"""Route events parsed by the netlink monitor (tor_agent.net.monitor), in a namespace the test creates: each
announced route equals what a dump shows, and a table kept from a dump plus the events equals a new dump."""

from __future__ import annotations

import select
import subprocess
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network

from nsutil import Netns

from tor_agent.model.routes import KernelNexthop, KernelRoute
from tor_agent.net.monitor import KernelRouteTable, NetlinkChanges, NetlinkMonitor, RouteUpdate
from tor_agent.net.netlink import kernel_routes
from tor_agent.wait import wait_until

MakeNetns = Callable[[str], Netns]
VTEP = IPv4Network("198.18.0.12/32")


def _setup(ns: Netns) -> None:
    ns.veth_uplinks({"eth1": "198.18.1.1/31", "eth2": "198.18.1.3/31"})


def _changes_after(commands: list[list[str]], wanted: int) -> tuple[NetlinkChanges, tuple[KernelRoute, ...]]:
    """In the namespace (a child process there): subscribe, run `ip` commands, collect the events until
    `wanted` route updates arrived; and the dump after them."""
    monitor = NetlinkMonitor()
    try:
        for argv in commands:
            subprocess.run(["ip", *argv], check=True, timeout=10)
        changes = NetlinkChanges()

        def enough() -> bool:
            select.select([monitor.fileno()], [], [], 0.05)
            changes.merge(monitor.read())
            return len(changes.route_updates) >= wanted

        wait_until(enough, 5, 0.0, f"{wanted} route updates")
        return changes, kernel_routes()
    finally:
        monitor.close()


def test_announced_routes_equal_the_dump_and_deletes_are_marked(make_netns: MakeNetns) -> None:
    ns = make_netns("leaf")
    _setup(ns)
    ecmp = ["nexthop", "via", "198.18.1.0", "dev", "eth1", "nexthop", "via", "198.18.1.2", "dev", "eth2"]
    commands = [
        ["route", "add", str(VTEP), "proto", "ospf", "metric", "20", *ecmp],
        ["route", "replace", str(VTEP), "proto", "ospf", "metric", "20", "via", "198.18.1.2", "dev", "eth2"],
        ["route", "add", "198.18.0.13/32", "proto", "ospf", *ecmp],
        ["route", "add", "198.18.0.14/32", "via", "198.18.1.0", "dev", "eth1", "table", "100"],  # not main: skipped
        ["route", "del", "198.18.0.13/32"],
    ]
    changes, dump = ns.run(_changes_after, commands, 4)
    ours = [u for u in changes.route_updates if u.route.prefix in (VTEP, IPv4Network("198.18.0.13/32"))]
    eth1, eth2 = KernelNexthop(IPv4Address("198.18.1.0"), "eth1"), KernelNexthop(IPv4Address("198.18.1.2"), "eth2")
    assert ours == [
        RouteUpdate(KernelRoute(VTEP, "ospf", (eth1, eth2), metric=20)),
        RouteUpdate(KernelRoute(VTEP, "ospf", (eth2,), metric=20)),
        RouteUpdate(KernelRoute(IPv4Network("198.18.0.13/32"), "ospf", (eth1, eth2))),
        RouteUpdate(KernelRoute(IPv4Network("198.18.0.13/32"), "ospf", (eth1, eth2)), deleted=True),
    ]
    assert changes.routes and not any(u.route.prefix == IPv4Network("198.18.0.14/32") for u in changes.route_updates)
    assert next(r for r in dump if r.prefix == VTEP) == ours[1].route


def test_a_table_kept_from_a_dump_and_the_events_equals_a_new_dump(make_netns: MakeNetns) -> None:
    ns = make_netns("leaf")
    _setup(ns)
    ecmp = ["nexthop", "via", "198.18.1.0", "dev", "eth1", "nexthop", "via", "198.18.1.2", "dev", "eth2"]
    for i in range(20):
        ns.ip("route", "add", f"198.19.0.{i}/32", "proto", "ospf", *ecmp)
    before = ns.run(kernel_routes)
    moves = [["route", "replace", f"198.19.0.{i}/32", "proto", "ospf", "via", "198.18.1.2", "dev", "eth2"]
             for i in range(10)]  # fmt: skip
    moves += [["route", "del", f"198.19.0.{i}/32"] for i in range(10, 15)]
    changes, after = ns.run(_changes_after, moves, len(moves))
    table = KernelRouteTable()
    table.reset(before)
    assert table.update(changes)
    assert sorted(table.routes(), key=str) == sorted(after, key=str)
    assert not table.update(NetlinkChanges(links=True))  # a link change: stale until the next dump

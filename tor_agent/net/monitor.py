"""Kernel change notifications: links, IPv4 addresses and IPv4 routes, as a file descriptor to block on.

A plain AF_NETLINK socket subscribed to the rtnetlink groups. Link and address messages only tell the
agent to look again (it dumps what it needs). Route messages of the main IPv4 table are also parsed into
the route they announce (`RouteUpdate`): the agent moves OVS's tunnel routes straight from them, without
dumping the table (which costs ~10 ms at a hundred VTEPs, and more on a switch CPU). Not pyroute2: 0.9
reads ahead into its own buffer, so select() on its socket misses events it already holds (seen here).
An overflowed socket (ENOBUFS: events were lost) reports every kind of change, and that routes were lost.

`KernelRouteTable` keeps the main table from a dump and the updates after it.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from tor_agent.model.routes import MAIN_TABLE, ROUTE_TYPES, KernelNexthop, KernelRoute, protocol_name
from tor_agent.net.errors import NetError
from tor_agent.net.nlmsg import HEADER, aligned, attributes

NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = 16, 17, 20, 21, 24, 25
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTNEXTHOP = struct.Struct("=HBBi")  # length, flags, hops, ifindex
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 6, 9, 15
RTNH_F_DEAD, RTNH_F_LINKDOWN = 0x1, 0x10
_BUFFER = 1 << 20


@dataclass(frozen=True)
class RouteUpdate:
    """One main-table IPv4 route as the kernel announced it: added or replaced, or `deleted`."""

    route: KernelRoute
    deleted: bool = False


@dataclass
class NetlinkChanges:
    """What kinds of change arrived since the last read, and the route updates among them, in order."""

    links: bool = False  # an interface or one of its IPv4 addresses appeared, went, or changed
    routes: bool = False
    route_updates: list[RouteUpdate] = field(default_factory=list)
    routes_lost: bool = False  # the socket overflowed: updates are missing, a table kept from them is stale

    def __bool__(self) -> bool:
        return self.links or self.routes

    def merge(self, other: NetlinkChanges) -> None:
        """Add `other`'s changes (later ones) to these."""
        self.links |= other.links
        self.routes |= other.routes
        self.route_updates += other.route_updates
        self.routes_lost |= other.routes_lost


class NetlinkMonitor:
    """Subscribed to link, address and route changes of this network namespace; `fileno()` for select()."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
            self._sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE))
        except OSError as e:
            raise NetError(f"cannot subscribe to netlink changes: {e}") from e
        self._sock.setblocking(False)

    def fileno(self) -> int:
        """The socket's descriptor: readable when changes are waiting."""
        return self._sock.fileno()

    def close(self) -> None:
        """Unsubscribe."""
        self._sock.close()

    def read(self) -> NetlinkChanges:
        """Every change waiting (never blocks)."""
        changes = NetlinkChanges()
        while True:
            try:
                data = self._sock.recv(_BUFFER)
            except BlockingIOError:
                return changes
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise NetError(f"cannot read netlink changes: {e}") from e
                changes.merge(NetlinkChanges(links=True, routes=True, routes_lost=True))
                continue
            batch = classify(data, self._names)
            if batch.links:
                self._names.clear()  # an index may now be another interface
            changes.merge(batch)


def classify(data: bytes, names: dict[int, str] | None = None) -> NetlinkChanges:
    """The kinds of change in one datagram of netlink messages, with the main-table IPv4 routes announced
    (`names`: interface index -> name, filled as indexes are looked up)."""
    changes = NetlinkChanges()
    names = {} if names is None else names
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _, _, _ = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            break
        if kind in (RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR):
            changes.links = True
        elif kind in (RTM_NEWROUTE, RTM_DELROUTE):
            changes.routes = True
            route = parse_route(data[offset + HEADER.size : offset + length], names)
            if route is not None:
                changes.route_updates.append(RouteUpdate(route, deleted=kind == RTM_DELROUTE))
        offset += aligned(length)
    return changes


def parse_route(body: bytes, names: dict[int, str]) -> KernelRoute | None:
    """The route of one RTM_NEWROUTE/RTM_DELROUTE body (struct rtmsg and its attributes) when it is an IPv4
    route of the main table, else None; as tor_agent.net.netlink reads a dump."""
    if len(body) < _RTMSG.size:
        return None
    family, dst_len, _, _, table, protocol, _, kind, flags = _RTMSG.unpack_from(body)
    if family != socket.AF_INET:
        return None
    attrs = dict(attributes(body, _RTMSG.size))
    table = struct.unpack("=I", attrs[RTA_TABLE][:4])[0] if RTA_TABLE in attrs else table
    if table != MAIN_TABLE:
        return None
    dst = IPv4Address(attrs[RTA_DST][:4]) if RTA_DST in attrs else IPv4Address(0)
    if RTA_MULTIPATH in attrs:
        nexthops = tuple(_multipath(attrs[RTA_MULTIPATH], names))
    elif RTA_OIF in attrs:
        nexthops = (_nexthop(attrs.get(RTA_GATEWAY), struct.unpack("=i", attrs[RTA_OIF][:4])[0], flags, names),)
    else:
        nexthops = ()
    return KernelRoute(
        prefix=IPv4Network((dst, dst_len), strict=False),
        protocol=protocol_name(protocol),
        nexthops=nexthops,
        type=ROUTE_TYPES.get(kind, str(kind)),
        metric=struct.unpack("=I", attrs[RTA_PRIORITY][:4])[0] if RTA_PRIORITY in attrs else 0,
    )


def _multipath(data: bytes, names: dict[int, str]) -> Iterable[KernelNexthop]:
    offset = 0
    while offset + _RTNEXTHOP.size <= len(data):
        length, flags, _, ifindex = _RTNEXTHOP.unpack_from(data, offset)
        if length < _RTNEXTHOP.size:
            return
        attrs = dict(attributes(data, offset + _RTNEXTHOP.size, offset + length))
        yield _nexthop(attrs.get(RTA_GATEWAY), ifindex, flags, names)
        offset += aligned(length)


def _nexthop(gateway: bytes | None, ifindex: int, flags: int, names: dict[int, str]) -> KernelNexthop:
    if ifindex not in names:
        try:
            names[ifindex] = socket.if_indextoname(ifindex)
        except OSError:
            names[ifindex] = f"if{ifindex}"  # gone already: as the dump names an unknown index
    return KernelNexthop(
        gateway=IPv4Address(gateway[:4]) if gateway else None,
        ifname=names[ifindex],
        live=not flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN),
    )


class KernelRouteTable:
    """The main IPv4 table as a dump gave it, kept up to date by the route updates after that dump.

    Usable (`valid`) from a dump until a change the updates do not carry: a link or address change (the kernel
    flushes routes of a downed link without telling) or lost events.
    """

    def __init__(self) -> None:
        self._routes: dict[tuple[IPv4Network, int], KernelRoute] = {}
        self.valid = False

    def reset(self, routes: Iterable[KernelRoute]) -> None:
        """The table as dumped now."""
        self._routes = {(r.prefix, r.metric): r for r in routes}
        self.valid = True

    def update(self, changes: NetlinkChanges) -> bool:
        """Apply `changes`; whether the table still reflects the kernel (else it waits for the next dump)."""
        if changes.links or changes.routes_lost or (changes.routes and not changes.route_updates):
            self.valid = False  # (route messages none of which could be read: not known to be harmless)
        for update in changes.route_updates:
            key = (update.route.prefix, update.route.metric)
            if update.deleted:
                self._routes.pop(key, None)
            else:
                self._routes[key] = update.route
        return self.valid

    def routes(self) -> tuple[KernelRoute, ...]:
        """Every route, as `tor_agent.net.netlink.kernel_routes` would dump them now."""
        return tuple(self._routes.values())

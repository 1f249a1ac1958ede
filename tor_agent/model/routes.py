"""Routes as plain values: the kernel's IPv4 routes (read by tor_agent.net) and OVS's tunnel route table
(read by tor_agent.ovs.routes), with the longest-prefix match over a dump. Pure.

Multipath routes are only visible by dumping (a route lookup returns one nexthop), so tor-agent always
dumps the main table and matches here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

MAIN_TABLE = 254

# /etc/iproute2/rt_protos, the ones an underlay shows; others print as their number.
PROTOCOLS = {2: "kernel", 3: "boot", 4: "static", 11: "zebra", 186: "bgp", 187: "isis", 188: "ospf", 192: "bfd"}
ROUTE_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 6: "blackhole", 7: "unreachable", 8: "prohibit"}


@dataclass(frozen=True)
class KernelNexthop:
    """One nexthop of a kernel route; `live` is False when the kernel marked it dead or link-down."""

    gateway: IPv4Address | None  # None: directly connected
    ifname: str
    live: bool = True


@dataclass(frozen=True)
class KernelRoute:
    """One IPv4 route of the main table; a multipath route lists every nexthop."""

    prefix: IPv4Network
    protocol: str
    nexthops: tuple[KernelNexthop, ...]
    type: str = "unicast"
    metric: int = 0

    def live_nexthops(self) -> tuple[KernelNexthop, ...]:
        """The nexthops the kernel forwards over."""
        return tuple(nh for nh in self.nexthops if nh.live) if self.type == "unicast" else ()


def protocol_name(number: int) -> str:
    """`ospf` for 188, the number as text for a protocol without a well-known name."""
    return PROTOCOLS.get(number, str(number))


def longest_match(routes: Iterable[KernelRoute], address: IPv4Address) -> KernelRoute | None:
    """The route the kernel uses for `address`: longest prefix, then lowest metric."""
    best: KernelRoute | None = None
    for route in routes:
        if address not in route.prefix:
            continue
        if (
            best is None
            or route.prefix.prefixlen > best.prefix.prefixlen
            or (route.prefix.prefixlen == best.prefix.prefixlen and route.metric < best.metric)
        ):
            best = route
    return best


class RouteIndex:
    """`longest_match` for many addresses over one dump: a dict per prefix length, so a lookup costs at most 33
    dict lookups instead of a scan of every route (a thousand VTEPs over a thousand routes: a million
    comparisons)."""

    def __init__(self, routes: Iterable[KernelRoute]) -> None:
        self._by_length: dict[int, dict[int, KernelRoute]] = {}
        for route in routes:
            same = self._by_length.setdefault(route.prefix.prefixlen, {})
            key = int(route.prefix.network_address)
            if key not in same or route.metric < same[key].metric:  # as longest_match: the first lowest metric
                same[key] = route
        self._lengths = sorted(self._by_length, reverse=True)

    def match(self, address: IPv4Address) -> KernelRoute | None:
        """The route the kernel uses for `address` (as `longest_match`)."""
        value = int(address)
        for length in self._lengths:
            mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
            route = self._by_length[length].get(value & mask)
            if route is not None:
                return route
        return None


@dataclass(frozen=True, order=True)
class Nexthop:
    """A way to a VTEP in OVS's route table: out of an uplink bridge, through a gateway (None: on the link)."""

    device: str
    gateway: IPv4Address | None

    def __str__(self) -> str:
        return f"{self.device} via {self.gateway}" if self.gateway is not None else self.device


@dataclass(frozen=True)
class OvsRoute:
    """One IPv4 entry of OVS's route table; `user` routes were added with ovs/route/add."""

    prefix: IPv4Network
    device: str
    gateway: IPv4Address | None = None
    user: bool = True

    @property
    def nexthop(self) -> Nexthop:
        """The route's device and gateway."""
        return Nexthop(self.device, self.gateway)

    def __str__(self) -> str:
        return f"{self.prefix} dev {self.nexthop}"

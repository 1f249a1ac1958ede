"""Netlink through pyroute2 (via tor_agent.net.iproute). Works with Debian 12's pyroute2 0.7 and PyPI's 0.9."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from types import TracebackType
from typing import Any

from tor_agent.model.routes import MAIN_TABLE, ROUTE_TYPES, KernelNexthop, KernelRoute, protocol_name
from tor_agent.net.errors import NetError, NetlinkFailure
from tor_agent.net.iproute import IPRoute, NetlinkError
from tor_agent.net.state import LinkState

IFF_UP = 0x1
RTNH_F_DEAD = 0x1
RTNH_F_LINKDOWN = 0x10


class Netlink:
    """A netlink socket in this process's network namespace; use as a context manager."""

    def __init__(self) -> None:
        try:
            self._ipr = IPRoute()
        except OSError as e:
            raise NetError(f"cannot open a netlink socket: {e}") from e

    def __enter__(self) -> Netlink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket."""
        self._ipr.close()

    def links(self) -> dict[str, LinkState]:
        """Every interface by name, with its IPv4 addresses."""
        addresses: dict[int, set[IPv4Interface]] = {}
        for msg in self._dump("read addresses", lambda: self._ipr.get_addr(family=socket.AF_INET)):
            local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            addresses.setdefault(msg["index"], set()).add(IPv4Interface(f"{local}/{msg['prefixlen']}"))
        links: dict[str, LinkState] = {}
        for msg in self._dump("read links", self._ipr.get_links):
            name, index = msg.get_attr("IFLA_IFNAME"), msg["index"]
            links[name] = LinkState(
                index=index,
                name=name,
                up=bool(msg["flags"] & IFF_UP),
                mtu=msg.get_attr("IFLA_MTU"),
                addresses=frozenset(addresses.get(index, ())),
            )
        return links

    def macs(self) -> dict[str, str]:
        """The hardware address of every interface that has one, by name (lowercase, colon-separated)."""
        found = {}
        for msg in self._dump("read links", self._ipr.get_links):
            mac = msg.get_attr("IFLA_ADDRESS")
            if mac:
                found[msg.get_attr("IFLA_IFNAME")] = str(mac).lower()
        return found

    def set_up(self, link: LinkState) -> None:
        """Bring `link` administratively up."""
        self._request(link.name, "set it up", "link", "set", index=link.index, state="up")

    def set_mtu(self, link: LinkState, mtu: int) -> None:
        """Set the MTU of `link`."""
        self._request(link.name, f"set mtu {mtu}", "link", "set", index=link.index, mtu=mtu)

    def add_address(self, link: LinkState, address: IPv4Interface) -> None:
        """Add `address` to `link`."""
        self._address("add", link, address)

    def remove_address(self, link: LinkState, address: IPv4Interface) -> None:
        """Remove `address` from `link`."""
        self._address("del", link, address)

    def routes(self) -> tuple[KernelRoute, ...]:
        """The IPv4 routes of the main table, multipath nexthops included."""
        names = {link.index: link.name for link in self.links().values()}
        messages = self._dump("read routes", lambda: self._ipr.route("dump", family=socket.AF_INET))
        return tuple(route for msg in messages if (route := _route(msg, names)) is not None)

    def _address(self, op: str, link: LinkState, address: IPv4Interface) -> None:
        verb = "add" if op == "add" else "remove"
        self._request(
            link.name,
            f"{verb} {address}",
            "addr",
            op,
            index=link.index,
            address=str(address.ip),
            prefixlen=address.network.prefixlen,
        )

    def _request(self, ifname: str, what: str, kind: str, op: str, **kwargs: Any) -> None:
        try:
            getattr(self._ipr, kind)(op, **kwargs)
        except NetlinkError as e:
            raise NetlinkFailure(ifname, what, e.code) from e

    @staticmethod
    def _dump(what: str, call: Any) -> list[Any]:
        try:
            return list(call())
        except NetlinkError as e:
            raise NetError(f"cannot {what}: netlink error {e.code}") from e


def _route(msg: Any, names: dict[int, str]) -> KernelRoute | None:
    table = msg.get_attr("RTA_TABLE") or msg["table"]
    if table != MAIN_TABLE:
        return None
    dst = msg.get_attr("RTA_DST") or "0.0.0.0"
    multipath = msg.get_attr("RTA_MULTIPATH")
    if multipath:
        nexthops = tuple(_nexthop(nh, nh["oif"], nh["flags"], names) for nh in multipath)
    elif msg.get_attr("RTA_OIF") is not None:
        nexthops = (_nexthop(msg, msg.get_attr("RTA_OIF"), msg["flags"], names),)
    else:
        nexthops = ()
    return KernelRoute(
        prefix=IPv4Network(f"{dst}/{msg['dst_len']}"),
        protocol=protocol_name(msg["proto"]),
        nexthops=nexthops,
        type=ROUTE_TYPES.get(msg["type"], str(msg["type"])),
        metric=msg.get_attr("RTA_PRIORITY") or 0,
    )


def _nexthop(msg: Any, oif: int, flags: int, names: dict[int, str]) -> KernelNexthop:
    gateway = msg.get_attr("RTA_GATEWAY")
    return KernelNexthop(
        gateway=IPv4Address(gateway) if gateway else None,
        ifname=names.get(oif, f"if{oif}"),
        live=not flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN),
    )


def kernel_routes() -> tuple[KernelRoute, ...]:
    """The main table's IPv4 routes, read in this process's network namespace."""
    with Netlink() as nl:
        return nl.routes()


def interface_names() -> frozenset[str]:
    """The names of every interface in this process's network namespace."""
    with Netlink() as nl:
        return frozenset(nl.links())


def interface_macs() -> dict[str, str]:
    """Every interface's MAC address by name, in this process's network namespace."""
    with Netlink() as nl:
        return nl.macs()

"""Netlink: reads as plain rtnetlink dumps (tor_agent.net.rtnl), changes through pyroute2 (via
tor_agent.net.iproute, imported at the first change). Works with Debian 12's pyroute2 0.7 and PyPI's 0.9."""

from __future__ import annotations

from ipaddress import IPv4Interface
from types import TracebackType
from typing import Any

from tor_agent.model.routes import KernelRoute
from tor_agent.net import rtnl
from tor_agent.net.errors import NetError, NetlinkFailure
from tor_agent.net.state import LinkState

IFF_UP = 0x1


class Netlink:
    """Netlink in this process's network namespace; use as a context manager. Reading never loads pyroute2."""

    def __init__(self) -> None:
        self._ipr: Any = None

    def __enter__(self) -> Netlink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close pyroute2's socket, if a change opened one."""
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def links(self) -> dict[str, LinkState]:
        """Every interface by name, with its IPv4 addresses."""
        addresses = rtnl.addresses()
        return {
            r.name: LinkState(
                index=r.index,
                name=r.name,
                up=bool(r.flags & IFF_UP),
                mtu=r.mtu,
                addresses=frozenset(addresses.get(r.index, ())),
            )
            for r in rtnl.links()
        }

    def macs(self) -> dict[str, str]:
        """The hardware address of every interface that has one, by name (lowercase, colon-separated)."""
        return {r.name: r.mac for r in rtnl.links() if r.mac}

    def routes(self) -> tuple[KernelRoute, ...]:
        """The IPv4 routes of the main table, multipath nexthops included."""
        return rtnl.routes({r.index: r.name for r in rtnl.links()})

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
        from tor_agent.net.iproute import IPRoute, NetlinkError  # pyroute2: for changes only

        if self._ipr is None:
            try:
                self._ipr = IPRoute()
            except OSError as e:
                raise NetError(f"cannot open a netlink socket: {e}") from e
        try:
            getattr(self._ipr, kind)(op, **kwargs)
        except NetlinkError as e:
            raise NetlinkFailure(ifname, what, e.code) from e


def kernel_routes() -> tuple[KernelRoute, ...]:
    """The main table's IPv4 routes, read in this process's network namespace."""
    with Netlink() as nl:
        return nl.routes()


def interface_names() -> frozenset[str]:
    """The names of every interface in this process's network namespace."""
    return frozenset(r.name for r in rtnl.links())


def interface_macs() -> dict[str, str]:
    """Every interface's MAC address by name, in this process's network namespace."""
    with Netlink() as nl:
        return nl.macs()

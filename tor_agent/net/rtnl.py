"""Dumps of the kernel's links, IPv4 addresses and IPv4 routes over a plain rtnetlink socket.

What tor-agent reads of them is a few fields per object; pyroute2 decodes every attribute of every message
(a link carries dozens: statistics, IPv6 settings...), which costs ~0.3 ms per link in Python: 70 ms per dump
at 200 uplinks, most of a `verify`, and a CLI start pays 20-30 ms to import it. So reads go straight to the
kernel here, with the route parser the netlink monitor uses for route events (one reading for dumps and
events); pyroute2 does the changes (tor_agent.net.netlink).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from tor_agent.model.routes import KernelRoute
from tor_agent.net import nlmsg
from tor_agent.net.errors import NetError
from tor_agent.net.monitor import parse_route

RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE = 18, 22, 26
RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU = 1, 3, 4
IFA_ADDRESS, IFA_LOCAL = 1, 2
_IFINFO = struct.Struct("=BxHiII")  # struct ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # struct ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # struct rtmsg


@dataclass(frozen=True)
class LinkRecord:
    """One interface as a link dump gives it."""

    index: int
    name: str
    flags: int
    mtu: int
    mac: str | None  # lowercase, colon-separated; None without a hardware address


def _dump(kind: int, request: bytes, what: str) -> Iterator[tuple[int, bytes]]:
    """(message type, body) of every message a dump of `kind` answers. Raises NetError."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            yield from nlmsg.dump(sock, kind, request)
    except OSError as e:
        raise NetError(f"cannot {what}: {e.strerror or e}") from e


def links() -> list[LinkRecord]:
    """Every interface of this network namespace."""
    found = []
    for msg, body in _dump(RTM_GETLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0), "read links"):
        if msg != RTM_NEWLINK or len(body) < _IFINFO.size:
            continue
        _, _, index, flags, _ = _IFINFO.unpack_from(body)
        attrs = dict(nlmsg.attributes(body, _IFINFO.size))
        if IFLA_IFNAME not in attrs:
            continue
        mac = attrs.get(IFLA_ADDRESS)
        found.append(
            LinkRecord(
                index=index,
                name=attrs[IFLA_IFNAME].split(b"\0", 1)[0].decode(),
                flags=flags,
                mtu=struct.unpack("=I", attrs[IFLA_MTU][:4])[0] if IFLA_MTU in attrs else 0,
                mac=":".join(f"{b:02x}" for b in mac) if mac else None,
            )
        )
    return found


def addresses() -> dict[int, set[IPv4Interface]]:
    """Every IPv4 address by interface index."""
    found: dict[int, set[IPv4Interface]] = {}
    for msg, body in _dump(RTM_GETADDR, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0), "read addresses"):
        if msg != RTM_NEWADDR or len(body) < _IFADDR.size:
            continue
        family, prefixlen, _, _, index = _IFADDR.unpack_from(body)
        attrs = dict(nlmsg.attributes(body, _IFADDR.size))
        local = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if family == socket.AF_INET and local is not None:
            found.setdefault(index, set()).add(IPv4Interface((IPv4Address(local[:4]), prefixlen)))
    return found


def routes(names: dict[int, str]) -> tuple[KernelRoute, ...]:
    """The IPv4 routes of the main table, multipath nexthops included (`names`: interface index -> name)."""
    request = _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
    found = []
    for msg, body in _dump(RTM_GETROUTE, request, "read routes"):
        if msg == RTM_NEWROUTE and (route := parse_route(body, names)) is not None:
            found.append(route)
    return tuple(found)

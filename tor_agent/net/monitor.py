"""Kernel change notifications: links, IPv4 addresses and IPv4 routes, as a file descriptor to block on.

A plain AF_NETLINK socket subscribed to the rtnetlink groups; only message types are read, never parsed
further: a change only tells the agent to look again (it dumps what it needs). Not pyroute2: 0.9 reads
ahead into its own buffer, so select() on its socket misses events it already holds (seen here).
An overflowed socket (ENOBUFS: events were lost) reports every kind of change.
"""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass

from tor_agent.net.errors import NetError

NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = 16, 17, 20, 21, 24, 25
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: length, type, flags, sequence, port id
_BUFFER = 1 << 20


@dataclass
class NetlinkChanges:
    """What kinds of change arrived since the last read."""

    links: bool = False  # an interface or one of its IPv4 addresses appeared, went, or changed
    routes: bool = False

    def __bool__(self) -> bool:
        return self.links or self.routes

    def merge(self, other: NetlinkChanges) -> None:
        """Add `other`'s changes to these."""
        self.links |= other.links
        self.routes |= other.routes


class NetlinkMonitor:
    """Subscribed to link, address and route changes of this network namespace; `fileno()` for select()."""

    def __init__(self) -> None:
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
                changes.merge(NetlinkChanges(links=True, routes=True))
                continue
            changes.merge(classify(data))


def classify(data: bytes) -> NetlinkChanges:
    """The kinds of change in one datagram of netlink messages."""
    changes = NetlinkChanges()
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
        if kind in (RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR):
            changes.links = True
        elif kind in (RTM_NEWROUTE, RTM_DELROUTE):
            changes.routes = True
        if length < _HEADER.size:
            break
        offset += (length + 3) & ~3
    return changes

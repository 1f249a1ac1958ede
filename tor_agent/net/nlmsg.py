"""Netlink messages as the plain-socket readers exchange them (monitor, rtnl, sockets, nft): the message
header, the answers to a dump, and a message's attributes. Standard library only."""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator

HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: length, type, flags, sequence, port id
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
_ATTR = struct.Struct("=HH")  # struct nlattr (rtattr): length, type
_TYPE = 0x3FFF  # an attribute's type without NLA_F_NESTED and NLA_F_NET_BYTEORDER
RECV_SIZE = 1 << 16


def aligned(length: int) -> int:
    """`length` rounded up to netlink's 4-byte alignment."""
    return (length + 3) & ~3


def message(kind: int, body: bytes, flags: int = NLM_F_REQUEST) -> bytes:
    """One netlink message of type `kind` carrying `body`."""
    return HEADER.pack(HEADER.size + len(body), kind, flags, 1, 0) + body


def dump(sock: socket.socket, kind: int, body: bytes) -> Iterator[tuple[int, bytes]]:
    """Send a dump request of type `kind` on `sock`; (type, body) of every message answering it, up to the
    kernel's NLMSG_DONE. Raises OSError: the kernel's error, or EPROTO for a malformed message."""
    sock.send(message(kind, body, NLM_F_REQUEST | NLM_F_DUMP))
    while True:
        data = sock.recv(RECV_SIZE)
        offset = 0
        while offset + HEADER.size <= len(data):
            length, msg, _, _, _ = HEADER.unpack_from(data, offset)
            if length < HEADER.size:
                raise OSError(errno.EPROTO, "a netlink message shorter than its header")
            if msg == NLMSG_DONE:
                return
            if msg == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset + HEADER.size)[0]
                raise OSError(code, os.strerror(code))
            yield msg, data[offset + HEADER.size : offset + length]
            offset += aligned(length)


def attributes(data: bytes, offset: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each attribute in `data[offset:end]`, up to the first malformed one."""
    end = len(data) if end is None else end
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            return
        yield kind & _TYPE, data[offset + _ATTR.size : offset + length]
        offset += aligned(length)

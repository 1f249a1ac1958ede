"""The kernel's established TCP connections through sock_diag, in a namespace holding only the test's own."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from nsutil import Netns

from tor_agent.net.sockets import Connection, established_tcp

V4 = ipaddress.ip_address("127.0.0.1")
V6 = ipaddress.ip_address("::1")


def _connected_pairs() -> tuple[frozenset[Connection], set[Connection]]:
    """Open a v4, a v6 and a v4-mapped-in-v6 connection plus an idle listener; return (read, expected)."""
    keep: list[socket.socket] = []
    expected: set[Connection] = set()
    idle = socket.socket()
    idle.bind(("127.0.0.1", 0))
    idle.listen()
    keep.append(idle)
    for family, server_host, client_host, seen_as in (
        (socket.AF_INET, "127.0.0.1", "127.0.0.1", V4),
        (socket.AF_INET6, "::1", "::1", V6),
        (socket.AF_INET6, "::", "::ffff:127.0.0.1", V4),
    ):
        server = socket.socket(family)
        server.bind((server_host, 0))
        server.listen()
        client = socket.socket(family)
        client.connect((client_host, server.getsockname()[1]))
        accepted, _ = server.accept()
        keep += [server, client, accepted]
        server_port, client_port = server.getsockname()[1], client.getsockname()[1]
        expected |= {(client_port, (seen_as, server_port)), (server_port, (seen_as, client_port))}
    try:
        return established_tcp(), expected
    finally:
        for s in keep:
            s.close()


def test_established_tcp_lists_exactly_the_established_connections(make_netns: Callable[[str], Netns]) -> None:
    ns = make_netns("sockets")
    ns.ip("link", "set", "lo", "up")
    found, expected = ns.run(_connected_pairs)
    assert found == expected


def test_established_tcp_of_an_empty_namespace_is_empty(make_netns: Callable[[str], Netns]) -> None:
    ns = make_netns("nosockets")
    assert ns.run(established_tcp) == frozenset()

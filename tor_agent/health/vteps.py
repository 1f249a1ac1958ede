"""Which VTEPs a switch should reach: pure, over routes already read (reusable by the overlay).

A leaf's VTEPs are its static `overlay.tunnels.peers` plus, with `overlay.tunnels.discover.ospf_prefix`,
every /32 inside that prefix that OSPF has a route for. A spine has no overlay: its "VTEPs" are every
other /32 OSPF knows (the loopbacks of the fabric). The switch's own loopback is never a VTEP.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

from tor_agent.config.schema import Intent


def discover_vteps(
    ospf_prefixes: Iterable[IPv4Network], within: IPv4Network | None, own: IPv4Address
) -> frozenset[IPv4Address]:
    """Every /32 of `ospf_prefixes` inside `within` (anywhere when None), except `own`."""
    return frozenset(
        prefix.network_address
        for prefix in ospf_prefixes
        if prefix.prefixlen == 32 and prefix.network_address != own and (within is None or prefix.subnet_of(within))
    )


def known_vteps(intent: Intent, ospf_prefixes: Iterable[IPv4Network]) -> tuple[IPv4Address, ...]:
    """The VTEPs `intent` expects to reach, sorted: static peers plus those discovered in OSPF's routes."""
    own = intent.node.loopback.ip
    if intent.overlay is None:
        return tuple(sorted(discover_vteps(ospf_prefixes, None, own)))
    tunnels = intent.overlay.tunnels
    found = set(tunnels.peers) - {own}
    if tunnels.discover is not None:
        found |= discover_vteps(ospf_prefixes, tunnels.discover.ospf_prefix, own)
    return tuple(sorted(found))

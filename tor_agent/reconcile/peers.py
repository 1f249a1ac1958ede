"""Which peers get a tunnel, and over which underlay nexthops: pure, over kernel routes already read.

Candidates are the intent's static peers plus every /32 inside `overlay.tunnels.discover.ospf_prefix`
that OSPF installed in the kernel (tor_agent.health.vteps), never this node's own VTEP. A candidate keeps
(or gets) a tunnel only while the kernel has a route to it with a live nexthop and none of its nexthops
goes through the overlay (its bridge, an access port, a tunnel port): a tunnel carried by a tunnel is
recursive routing (FRR #7213), and the tunnel would collapse the moment it came up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from tor_agent.config.schema import Intent
from tor_agent.health.vteps import discover_vteps
from tor_agent.model.overlay import TUNNEL_PREFIX, OvsDesired
from tor_agent.model.underlay import uplink_bridge_name, uses_uplink_bridges
from tor_agent.net.routes import KernelRoute, longest_match
from tor_agent.ovs.routes import Nexthop

OSPF = "ospf"


@dataclass(frozen=True)
class Peers:
    """The outcome of peer selection."""

    usable: Mapping[IPv4Address, KernelRoute]  # peer -> the underlay route its tunnel rides on
    dropped: Mapping[IPv4Address, str]  # candidate -> why it gets no tunnel

    @property
    def addresses(self) -> frozenset[IPv4Address]:
        """The peers that get a tunnel."""
        return frozenset(self.usable)


NO_PEERS = Peers(usable={}, dropped={})


def overlay_interfaces(intent: Intent) -> frozenset[str]:
    """Kernel interfaces that belong to the overlay (a route through one of them rides a tunnel)."""
    if intent.overlay is None:
        return frozenset()
    return frozenset((intent.overlay.bridge, *intent.overlay.access_ports))


def candidates(intent: Intent, routes: Sequence[KernelRoute]) -> frozenset[IPv4Address]:
    """Static peers plus the VTEPs discovered in the kernel's OSPF routes, never this node's own."""
    overlay = intent.overlay
    if overlay is None:
        return frozenset()
    own = intent.node.loopback.ip
    found = set(overlay.tunnels.peers) - {own}
    if overlay.tunnels.discover is not None:
        ospf = (r.prefix for r in routes if r.protocol == OSPF and r.type == "unicast")
        found |= discover_vteps(ospf, overlay.tunnels.discover.ospf_prefix, own)
    return frozenset(found)


def select_peers(intent: Intent, routes: Sequence[KernelRoute]) -> Peers:
    """The candidates that get a tunnel (with their route), and why the others do not."""
    inside = overlay_interfaces(intent)
    usable: dict[IPv4Address, KernelRoute] = {}
    dropped: dict[IPv4Address, str] = {}
    for peer in sorted(candidates(intent, routes)):
        route = longest_match(routes, peer)
        live = route.live_nexthops() if route is not None else ()
        through = sorted({nh.ifname for nh in live if nh.ifname in inside or nh.ifname.startswith(TUNNEL_PREFIX)})
        if route is None or not live:
            dropped[peer] = "no underlay route with a live nexthop"
        elif through:
            dropped[peer] = f"its route {route.prefix} goes through the overlay ({', '.join(through)})"
        else:
            usable[peer] = route
    return Peers(usable, dropped)


def tunnel_nexthops(intent: Intent, peers: Peers) -> dict[IPv4Address, tuple[Nexthop, ...]]:
    """Each usable peer's live nexthops over an uplink bridge (netdev leaves: what OVS's route table needs)."""
    bridges = uplink_bridges(intent)
    return {
        peer: tuple(sorted({Nexthop(nh.ifname, nh.gateway) for nh in route.live_nexthops() if nh.ifname in bridges}))
        for peer, route in peers.usable.items()
    }


def uplink_bridges(intent: Intent) -> frozenset[str]:
    """The uplinks' OVS bridges on a netdev leaf; empty elsewhere."""
    if not uses_uplink_bridges(intent):
        return frozenset()
    return frozenset(uplink_bridge_name(u) for u in intent.underlay.uplinks)


def only_tunnels_to(desired: OvsDesired, peers: Collection[IPv4Address]) -> OvsDesired:
    """`desired` with the tunnel ports to anyone but `peers` left out (static peers without a route too)."""
    unwanted = {name for peer, name in desired.tunnels.items() if peer not in peers}
    return dataclasses.replace(
        desired,
        ports={name: port for name, port in desired.ports.items() if name not in unwanted},
        tunnels={peer: name for peer, name in desired.tunnels.items() if peer in peers},
    )

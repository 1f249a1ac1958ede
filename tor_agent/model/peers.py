"""Which VTEPs a switch reaches and which of them get a tunnel: pure, over kernel routes already read.

The agent (tor_agent.reconcile) and `verify` (tor_agent.health) both decide here, so they always agree.

- VTEP discovery: a leaf's VTEPs are its static `overlay.tunnels.peers` plus, with
  `overlay.tunnels.discover.ospf_prefix`, every /32 inside that prefix that OSPF has a route for. A spine has
  no overlay: its "VTEPs" are every other /32 OSPF knows (the loopbacks of the fabric). The switch's own
  loopback is never a VTEP.
- Peer selection: a candidate gets a tunnel only while the kernel has a route to it with a live nexthop and
  none of its nexthops goes through the overlay (its bridge, an access port, a tunnel port): a tunnel carried
  by a tunnel is recursive routing (FRR #7213) and collapses as soon as it comes up.
- Hold-down: a peer whose route went keeps its tunnel for `overlay.tunnels.hold_down_s` (`TunnelHold`).
- Each usable peer's live nexthops over the uplink bridges: what OVS's own route table needs on a netdev leaf.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from tor_agent.config.schema import Intent, Tunnels
from tor_agent.model.overlay import TUNNEL_PREFIX, OvsDesired
from tor_agent.model.routes import KernelRoute, Nexthop, RouteIndex
from tor_agent.model.underlay import uplink_bridge_name, uses_uplink_bridges

OSPF = "ospf"  # the kernel's name for routes FRR's ospfd installed


# --- VTEP discovery -----------------------------------------------------------------------------------------


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


# --- which peers get a tunnel ------------------------------------------------------------------------------


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
    index = RouteIndex(routes)
    for peer in sorted(candidates(intent, routes)):
        route = index.match(peer)
        live = route.live_nexthops() if route is not None else ()
        through = sorted({nh.ifname for nh in live if nh.ifname in inside or nh.ifname.startswith(TUNNEL_PREFIX)})
        if route is None or not live:
            dropped[peer] = "no underlay route with a live nexthop"
        elif through:
            dropped[peer] = f"its route {route.prefix} goes through the overlay ({', '.join(through)})"
        else:
            usable[peer] = route
    return Peers(usable, dropped)


def any_ospf_route(routes: Iterable[KernelRoute]) -> bool:
    """Whether OSPF has installed anything: with none, FRR is restarting or every uplink is down."""
    return any(r.protocol == OSPF for r in routes)


def uplink_bridges(intent: Intent) -> frozenset[str]:
    """The uplinks' OVS bridges on a netdev leaf; empty elsewhere."""
    if not uses_uplink_bridges(intent):
        return frozenset()
    return frozenset(uplink_bridge_name(u) for u in intent.underlay.uplinks)


def tunnel_nexthops(intent: Intent, peers: Peers) -> dict[IPv4Address, tuple[Nexthop, ...]]:
    """Each usable peer's live nexthops over an uplink bridge (netdev leaves: what OVS's route table needs)."""
    bridges = uplink_bridges(intent)
    return {
        peer: tuple(sorted({Nexthop(nh.ifname, nh.gateway) for nh in route.live_nexthops() if nh.ifname in bridges}))
        for peer, route in peers.usable.items()
    }


def only_tunnels_to(desired: OvsDesired, peers: Collection[IPv4Address]) -> OvsDesired:
    """`desired` with the tunnel ports to anyone but `peers` left out (static peers without a route too)."""
    unwanted = {name for peer, name in desired.tunnels.items() if peer not in peers}
    return dataclasses.replace(
        desired,
        ports={name: port for name, port in desired.ports.items() if name not in unwanted},
        tunnels={peer: name for peer, name in desired.tunnels.items() if peer in peers},
    )


# --- hold-down ---------------------------------------------------------------------------------------------


@dataclass
class TunnelHold:
    """Tunnels kept for `overlay.tunnels.hold_down_s` after their peer's route went: the daemon's memory.

    A peer's /32 disappears for seconds when its ospfd restarts or a route flaps; deleting the tunnel and
    adding it back gives it a new OpenFlow port number that the controller must learn again. A peer the
    intent no longer allows (a static peer removed, outside the discovery prefix) is not held.
    """

    missing_since: dict[IPv4Address, float] = field(default_factory=dict)

    def held(
        self, intent: Intent, peers: Peers, existing: Collection[IPv4Address], now: float
    ) -> dict[IPv4Address, float]:
        """The peers in `existing` (tunnels there now) without a usable route still inside the hold-down,
        with the seconds left."""
        if intent.overlay is None:
            self.missing_since = {}
            return {}
        tunnels = intent.overlay.tunnels
        missing = (p for p in existing if p not in peers.usable and _allowed(intent, tunnels, p))
        self.missing_since = {p: self.missing_since.get(p, now) for p in missing}
        left = {p: tunnels.hold_down_s - (now - since) for p, since in sorted(self.missing_since.items())}
        return {p: s for p, s in left.items() if s > 0}


def _allowed(intent: Intent, tunnels: Tunnels, peer: IPv4Address) -> bool:
    """Whether the intent could make `peer` a tunnel peer (static, or inside the discovery prefix)."""
    if peer == intent.node.loopback.ip:
        return False
    return peer in tunnels.peers or (tunnels.discover is not None and peer in tunnels.discover.ospf_prefix)

"""Tunnel peers as the reconciler needs them: pure, over kernel routes already read.

Which peers get a tunnel is decided in tor_agent.health.overlay (`select_peers`), so that the agent and
`verify` agree; here: each peer's nexthops over the uplink bridges (for OVS's route table) and the desired
OVS state restricted to the peers that get a tunnel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from tor_agent.config.schema import Intent, Tunnels
from tor_agent.health.overlay import NO_PEERS, Peers, select_peers, uplink_bridges
from tor_agent.model.overlay import OvsDesired
from tor_agent.ovs.routes import Nexthop

__all__ = [
    "NO_PEERS",
    "Peers",
    "TunnelHold",
    "only_tunnels_to",
    "select_peers",
    "tunnel_nexthops",
    "uplink_bridges",
]


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

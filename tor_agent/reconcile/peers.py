"""Tunnel peers as the reconciler needs them: pure, over kernel routes already read.

Which peers get a tunnel is decided in tor_agent.health.overlay (`select_peers`), so that the agent and
`verify` agree; here: each peer's nexthops over the uplink bridges (for OVS's route table) and the desired
OVS state restricted to the peers that get a tunnel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from ipaddress import IPv4Address

from tor_agent.config.schema import Intent
from tor_agent.health.overlay import NO_PEERS, Peers, select_peers, uplink_bridges
from tor_agent.model.overlay import OvsDesired
from tor_agent.ovs.routes import Nexthop

__all__ = ["NO_PEERS", "Peers", "only_tunnels_to", "select_peers", "tunnel_nexthops", "uplink_bridges"]


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

"""Which interfaces OSPF runs on, and with what, for a validated intent.

On a `datapath: netdev` leaf each uplink is an OVS bridge holding the physical port, and OSPF runs on
the bridge's internal interface (docs/design.md §8); everywhere else OSPF runs on the uplink itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface

from tor_agent.config.schema import Intent, Uplink

MAX_IFNAME = 15  # Linux IFNAMSIZ - 1


@dataclass(frozen=True)
class OspfInterface:
    """A point-to-point interface OSPF runs on."""

    name: str  # the interface FRR configures
    physical: str  # the uplink port as named in the intent
    address: IPv4Interface | None  # None: unnumbered, the loopback /32 is borrowed
    cost: int | None
    mtu: int


def uses_uplink_bridges(intent: Intent) -> bool:
    """True when uplinks are OVS bridges (userspace datapath: OVS itself encapsulates tunnels)."""
    return intent.overlay is not None and intent.overlay.datapath == "netdev"


def uplink_bridge_name(uplink: Uplink) -> str:
    """The OVS bridge that holds `uplink` on a netdev leaf (the intent's naming rule: `Uplink.bridge_name`)."""
    return uplink.bridge_name


def ospf_interfaces(intent: Intent) -> tuple[OspfInterface, ...]:
    """The interfaces OSPF must run on, in intent order."""
    bridged = uses_uplink_bridges(intent)
    return tuple(
        OspfInterface(
            name=uplink_bridge_name(u) if bridged else u.name,
            physical=u.name,
            address=u.address,
            cost=u.cost,
            mtu=u.mtu,
        )
        for u in intent.underlay.uplinks
    )

"""The kernel link state an intent asks for: which interfaces are up, their MTU, the IPv4 addresses
tor-agent owns on them, which of them are OVS-attached kernel ports, and the sysctls it sets. Pure.

Layout (docs/design.md §8):
- `lo` always carries the loopback /32 (on a leaf also the VTEP address).
- `datapath: system` and spines: each uplink carries its link address, or, unnumbered, the borrowed
  loopback /32 (FRR's unnumbered point-to-point OSPF needs the /32 on the interface itself).
- `datapath: netdev`: each uplink is an OVS bridge holding the physical port. The bridge's internal
  interface carries the link address (numbered) and the VTEP /32 (always: OVS only decapsulates tunnel
  packets addressed to one of its own ports). The physical port and every access port are OVS-attached
  kernel ports: they carry no address, the kernel drops their frames at netdev ingress (OVS still sees
  them through AF_PACKET) and IPv6 is disabled on them.
- IPv4 forwarding is on (the FRR configuration deliberately renders no `ip forwarding` line).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import Literal

from tor_agent.config.schema import Intent, Uplink
from tor_agent.model.underlay import uplink_bridge_name, uses_uplink_bridges

LinkRole = Literal["loopback", "uplink", "uplink-bridge", "uplink-port", "access-port"]


@dataclass(frozen=True)
class Sysctl:
    """One kernel parameter under /proc/sys, by path parts (interface names may contain dots)."""

    path: tuple[str, ...]
    value: str
    optional: bool = False  # absent from this kernel (e.g. no IPv6 at all): nothing to do

    @property
    def key(self) -> str:
        """The sysctl(8) name, with dots inside a part written as `/` as sysctl(8) does."""
        return ".".join(part.replace(".", "/") for part in self.path)


@dataclass(frozen=True)
class LinkSpec:
    """What one kernel interface must look like."""

    name: str
    where: str  # the intent field that asks for it, for messages: "underlay.uplinks[1]"
    role: LinkRole
    mtu: int | None  # None: tor-agent leaves the MTU alone
    addresses: tuple[IPv4Interface, ...]  # the addresses tor-agent owns on it, in order of addition
    ovs_port: bool = False  # OVS-attached kernel port: netdev-ingress drop chain + disable_ipv6

    @property
    def subject(self) -> str:
        """`overlay.access_ports[0] eth3`: the intent field and the interface, for messages."""
        return f"{self.where} {self.name}"

    @property
    def note(self) -> str:
        """What the interface is, where its name does not say: ` (the uplink's OVS bridge interface; ...)`."""
        return _ROLE_NOTES.get(self.role, "")

    def describe(self) -> str:
        """The subject with its note, for messages."""
        return f"{self.subject}{self.note}"


_ROLE_NOTES: dict[LinkRole, str] = {
    "uplink-bridge": " (the uplink's OVS bridge interface; the OVS driver creates it)",
}


@dataclass(frozen=True)
class LinksSpec:
    """The whole desired link state of one switch."""

    links: tuple[LinkSpec, ...]
    sysctls: tuple[Sysctl, ...]

    @property
    def ovs_ports(self) -> tuple[str, ...]:
        """Names of the OVS-attached kernel ports, in intent order."""
        return tuple(link.name for link in self.links if link.ovs_port)

    def link(self, name: str) -> LinkSpec | None:
        """The spec of interface `name`, if the intent names it."""
        return next((link for link in self.links if link.name == name), None)


IP_FORWARD = Sysctl(("net", "ipv4", "ip_forward"), "1")


def disable_ipv6(name: str) -> Sysctl:
    """`net.ipv6.conf.<name>.disable_ipv6 = 1`: the kernel must not speak IPv6 on an OVS-attached port."""
    return Sysctl(("net", "ipv6", "conf", name, "disable_ipv6"), "1", optional=True)


def desired_links(intent: Intent) -> LinksSpec:
    """The link state `intent` asks for, in apply order: loopback, uplinks (bridge before port), access ports."""
    loopback = intent.node.loopback
    links = [LinkSpec(name="lo", where="node.loopback", role="loopback", mtu=None, addresses=(loopback,))]
    bridged = uses_uplink_bridges(intent)
    for i, uplink in enumerate(intent.underlay.uplinks):
        where = f"underlay.uplinks[{i}]"
        links.extend(_bridged_uplink(uplink, where, loopback) if bridged else [_plain_uplink(uplink, where, loopback)])
    if bridged and intent.overlay is not None:
        links.extend(
            LinkSpec(port, f"overlay.access_ports[{i}]", "access-port", mtu=None, addresses=(), ovs_port=True)
            for i, port in enumerate(intent.overlay.access_ports)
        )
    sysctls = (IP_FORWARD, *(disable_ipv6(link.name) for link in links if link.ovs_port))
    return LinksSpec(links=tuple(links), sysctls=sysctls)


def _plain_uplink(uplink: Uplink, where: str, loopback: IPv4Interface) -> LinkSpec:
    address = uplink.address if uplink.address is not None else loopback
    return LinkSpec(name=uplink.name, where=where, role="uplink", mtu=uplink.mtu, addresses=(address,))


def _bridged_uplink(uplink: Uplink, where: str, loopback: IPv4Interface) -> tuple[LinkSpec, LinkSpec]:
    addresses = (uplink.address, loopback) if uplink.address is not None else (loopback,)
    # The bridge's internal port does not reliably follow the port's MTU (docs/design.md, fact 5): set both.
    bridge = LinkSpec(
        name=uplink_bridge_name(uplink), where=where, role="uplink-bridge", mtu=uplink.mtu, addresses=addresses
    )
    port = LinkSpec(name=uplink.name, where=where, role="uplink-port", mtu=uplink.mtu, addresses=(), ovs_port=True)
    return bridge, port

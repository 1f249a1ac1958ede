"""What the kernel currently has, as plain values read by the driver (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Interface


@dataclass(frozen=True)
class LinkState:
    """One kernel interface as read from netlink."""

    index: int
    name: str
    up: bool  # administratively up (IFF_UP), whatever the carrier
    mtu: int
    addresses: frozenset[IPv4Interface] = frozenset()


@dataclass(frozen=True)
class NftTable:
    """tor-agent's own nftables table (`netdev tor_agent`) as it is."""

    drop_ports: frozenset[str]  # devices with a well-formed ingress drop chain
    exact: bool  # nothing else in the table: no other chains, no rules


@dataclass(frozen=True)
class OwnedAddress:
    """An address tor-agent added: on which interface (name and index: a recreated interface is another one)."""

    ifname: str
    ifindex: int
    address: IPv4Interface


@dataclass(frozen=True)
class KernelState:
    """Everything the plan looks at."""

    links: Mapping[str, LinkState]
    sysctls: Mapping[tuple[str, ...], str | None]  # None: the parameter does not exist
    nft: NftTable | None  # None: the table does not exist
    owned: frozenset[OwnedAddress] = field(default_factory=frozenset)

    def owned_present(self) -> frozenset[OwnedAddress]:
        """The recorded addresses that are still there, on the same interface: the only ones tor-agent may remove."""
        return frozenset(o for o in self.owned if self._holds(o))

    def _holds(self, owned: OwnedAddress) -> bool:
        link = self.links.get(owned.ifname)
        return link is not None and link.index == owned.ifindex and owned.address in link.addresses

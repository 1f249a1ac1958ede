"""The changes the links driver makes, as plain values: planned purely, applied by the driver."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface

from tor_agent.model.links import Sysctl


@dataclass(frozen=True)
class SetSysctl:
    """Set a kernel parameter to the spec's value."""

    sysctl: Sysctl
    current: str

    def __str__(self) -> str:
        return f"sysctl {self.sysctl.key}: {self.current} -> {self.sysctl.value}"


@dataclass(frozen=True)
class SetNftDropPorts:
    """Replace tor-agent's nftables table with one ingress drop chain per port (no ports: delete the table)."""

    ports: tuple[str, ...]

    def __str__(self) -> str:
        return f"nftables netdev ingress drop on: {', '.join(self.ports) or '(none: table removed)'}"


@dataclass(frozen=True)
class SetMtu:
    """Set an interface's MTU."""

    ifname: str
    mtu: int
    current: int

    def __str__(self) -> str:
        return f"{self.ifname}: mtu {self.current} -> {self.mtu}"


@dataclass(frozen=True)
class SetUp:
    """Bring an interface administratively up."""

    ifname: str

    def __str__(self) -> str:
        return f"{self.ifname}: set up"


@dataclass(frozen=True)
class RemoveAddress:
    """Remove an address tor-agent added earlier (the only kind it ever removes)."""

    ifname: str
    address: IPv4Interface

    def __str__(self) -> str:
        return f"{self.ifname}: remove {self.address}"


@dataclass(frozen=True)
class AddAddress:
    """Add an address; tor-agent records it as its own."""

    ifname: str
    address: IPv4Interface

    def __str__(self) -> str:
        return f"{self.ifname}: add {self.address}"


Action = SetSysctl | SetNftDropPorts | SetMtu | SetUp | RemoveAddress | AddAddress

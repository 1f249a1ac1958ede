"""Plain values exchanged with the OVS driver: what OVSDB holds (snapshot) and what to change (actions).

No third-party import here: the reconciler and its in-memory test fakes use these without OVS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tor_agent.model.overlay import BridgeSpec, InterfaceSpec, Pairs, PortSpec


@dataclass(frozen=True)
class BridgeState:
    """A Bridge row as read from OVSDB; `other_config` is the whole map."""

    name: str
    owned: bool
    datapath_type: str
    protocols: tuple[str, ...]
    fail_mode: str | None
    other_config: Pairs
    ports: frozenset[str]

    def matches(self, spec: BridgeSpec) -> bool:
        """True when every column tor-agent manages already has the value `spec` asks for."""
        if (self.datapath_type, self.protocols, self.fail_mode) != (spec.datapath_type, spec.protocols, spec.fail_mode):
            return False
        managed = tuple(kv for kv in self.other_config if kv[0] in spec.other_config_keys)
        return managed == spec.other_config


@dataclass(frozen=True)
class PortState:
    """A Port row: its interfaces by name and the bridge holding it (None while it is held by none)."""

    name: str
    owned: bool
    bridge: str | None
    interfaces: tuple[str, ...]


@dataclass(frozen=True)
class InterfaceState:
    """An Interface row: the columns tor-agent sets (as a spec) plus what ovs-vswitchd reports."""

    spec: InterfaceSpec
    owned: bool
    ofport: int | None  # None until ovs-vswitchd has seen it; -1 when it failed
    error: str | None

    @property
    def failed(self) -> bool:
        return self.ofport == -1 or bool(self.error)


@dataclass(frozen=True)
class OvsSnapshot:
    """The relevant part of OVSDB, owned and foreign rows alike, keyed by name."""

    bridges: Mapping[str, BridgeState]
    ports: Mapping[str, PortState]
    interfaces: Mapping[str, InterfaceState]

    def port_matches(self, spec: PortSpec) -> bool:
        """True when an owned port and interface named `spec.name` already look exactly like `spec`."""
        port = self.ports.get(spec.name)
        if port is None or not port.owned or port.bridge != spec.bridge or port.interfaces != (spec.name,):
            return False
        iface = self.interfaces.get(spec.name)
        return iface is not None and iface.owned and iface.spec == spec.interface

    def owned_failures(self) -> tuple[InterfaceFailure, ...]:
        """Owned interfaces ovs-vswitchd could not set up (ofport -1 or an error), by name."""
        return tuple(
            InterfaceFailure(name, i.ofport, i.error or "")
            for name, i in sorted(self.interfaces.items())
            if i.owned and i.failed
        )


@dataclass(frozen=True)
class InterfaceFailure:
    """An interface ovs-vswitchd did not set up, with its own words (`Interface.error`)."""

    interface: str
    ofport: int | None
    error: str

    def __str__(self) -> str:
        return f"interface {self.interface}: {self.error or 'not set up by ovs-vswitchd'} (ofport {self.ofport})"


@dataclass(frozen=True)
class AddBridge:
    spec: BridgeSpec


@dataclass(frozen=True)
class UpdateBridge:
    spec: BridgeSpec


@dataclass(frozen=True)
class DeleteBridge:
    name: str


@dataclass(frozen=True)
class AddPort:
    spec: PortSpec


@dataclass(frozen=True)
class UpdatePort:
    spec: PortSpec


@dataclass(frozen=True)
class DeletePort:
    name: str


Action = AddBridge | UpdateBridge | DeleteBridge | AddPort | UpdatePort | DeletePort


@dataclass(frozen=True)
class Conflict:
    """A row tor-agent wants but may not touch (it exists without the ownership marker), or must keep."""

    table: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.table} {self.name}: {self.reason}"


@dataclass(frozen=True)
class ApplyResult:
    """What one `apply` did: the transaction's outcome and what ovs-vswitchd made of it."""

    committed: bool  # False: nothing needed writing, no transaction was sent
    next_cfg: int | None = None
    failures: tuple[InterfaceFailure, ...] = ()
    conflicts: tuple[Conflict, ...] = ()  # rows found foreign when the transaction was built
    attempts: int = 0
    seconds: float = 0.0

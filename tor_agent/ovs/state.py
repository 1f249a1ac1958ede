"""Plain values exchanged with the OVS driver: what OVSDB holds (snapshot) and what to change (actions).

No third-party import here: the reconciler and its in-memory test fakes use these without OVS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from tor_agent.model.overlay import BridgeSpec, ControllerSpec, InterfaceSpec, Pairs, PortSpec, SslSpec


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
class ControllerState:
    """A Controller row: the columns tor-agent sets (with the target made canonical) plus what ovs-vswitchd
    reports about the connection. ovs-vswitchd refreshes `is_connected`, `role` and `status` on its stats
    timer, so they can be up to ~5 s old."""

    bridge: str | None  # the bridge holding it (None while held by none)
    target: str  # as written in OVSDB (tor-agent may use the alternate spelling, see model.overlay)
    owned: bool
    spec: ControllerSpec  # spec.target is canonical
    is_connected: bool = False
    role: str | None = None  # "master" | "slave" | "other" (equal)
    status: Pairs = ()  # state, last_error, sec_since_connect, sec_since_disconnect, ...

    @property
    def canonical(self) -> str:
        """The canonical target: every spelling of one controller compares equal here."""
        return self.spec.target

    def status_value(self, key: str) -> str | None:
        """One key of the `status` map."""
        return dict(self.status).get(key)


@dataclass(frozen=True)
class SslState:
    """The switch-wide SSL row referenced by the Open_vSwitch row."""

    owned: bool
    spec: SslSpec


@dataclass(frozen=True)
class OvsSnapshot:
    """The relevant part of OVSDB, owned and foreign rows alike, keyed by name.

    `controllers` is None when the snapshot was taken without the Controller and SSL tables (an older
    driver or a test fake): controllers and SSL are then neither compared nor changed.
    """

    bridges: Mapping[str, BridgeState]
    ports: Mapping[str, PortState]
    interfaces: Mapping[str, InterfaceState]
    controllers: tuple[ControllerState, ...] | None = None
    ssl: SslState | None = None

    def controllers_of(self, bridge: str) -> tuple[ControllerState, ...]:
        """The controllers of `bridge`, owned and foreign (none when controllers were not read)."""
        return tuple(c for c in self.controllers or () if c.bridge == bridge)

    def port_matches(self, spec: PortSpec) -> bool:
        """True when an owned port and interface named `spec.name` already look exactly like `spec`."""
        port = self.ports.get(spec.name)
        if port is None or not port.owned or port.bridge != spec.bridge or port.interfaces != (spec.name,):
            return False
        iface = self.interfaces.get(spec.name)
        return iface is not None and iface.owned and iface.spec == spec.interface

    def owned_tunnel_peers(self) -> frozenset[IPv4Address]:
        """The remote VTEPs of the GRE ports tor-agent owns."""
        peers = set()
        for iface in self.interfaces.values():
            remote = dict(iface.spec.options).get("remote_ip")
            if iface.owned and iface.spec.type == "gre" and remote:
                try:
                    peers.add(IPv4Address(remote))
                except ValueError:
                    continue  # a hand-edited remote_ip (`flow`, a typo): the planner repairs the port
        return frozenset(peers)

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


@dataclass(frozen=True)
class AddController:
    bridge: str
    spec: ControllerSpec


@dataclass(frozen=True)
class UpdateController:
    bridge: str
    spec: ControllerSpec


@dataclass(frozen=True)
class DeleteController:
    bridge: str
    target: str  # as written in OVSDB


@dataclass(frozen=True)
class ReconnectController:
    """Make ovs-vswitchd connect to this controller now: its row's target is rewritten to the other
    spelling of the same address (a new connection, no reconnect backoff; the controller set never
    becomes empty, so flows stay)."""

    bridge: str
    target: str  # canonical


@dataclass(frozen=True)
class SetSsl:
    spec: SslSpec


@dataclass(frozen=True)
class DeleteSsl:
    pass


Action = (
    AddBridge
    | UpdateBridge
    | DeleteBridge
    | AddPort
    | UpdatePort
    | DeletePort
    | AddController
    | UpdateController
    | DeleteController
    | ReconnectController
    | SetSsl
    | DeleteSsl
)


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

"""Turn `Action` values into one OVSDB transaction: inserts, column mutations, never whole-set rewrites.

Ownership is checked again here, against a snapshot taken in the same IDL state the transaction is built
on (the plan may come from an older one): a row without tor-agent's marker is never modified or deleted,
whatever the action says. Controller rows are found by bridge and canonical target (any spelling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tor_agent.model.overlay import (
    OWNER_KEY,
    OWNER_VALUE,
    BridgeSpec,
    ControllerSpec,
    InterfaceSpec,
    Pairs,
    PortSpec,
    SslSpec,
    alternate_target,
)
from tor_agent.ovs.cache import NameIndex, Row
from tor_agent.ovs.state import (
    Action,
    AddBridge,
    AddController,
    AddPort,
    Conflict,
    ControllerState,
    DeleteBridge,
    DeleteController,
    DeletePort,
    DeleteSsl,
    OvsSnapshot,
    ReconnectController,
    SetSsl,
    UpdateBridge,
    UpdateController,
    UpdatePort,
)

_ORDER: dict[type, int] = {
    AddBridge: 0,
    UpdateBridge: 0,
    SetSsl: 0,
    AddPort: 1,
    UpdatePort: 1,
    AddController: 1,
    UpdateController: 1,
    ReconnectController: 1,
    DeletePort: 2,
    DeleteController: 2,
    DeleteSsl: 2,
    DeleteBridge: 3,
}


def _marker() -> dict[str, str]:
    return {OWNER_KEY: OWNER_VALUE}


def _opt(value: Any) -> list[Any]:
    return [] if value is None else [value]


def sync_map(row: Row, column: str, current: Pairs, desired: Pairs, managed: frozenset[str] | None = None) -> None:
    """Mutate map `column` of `row` from `current` to `desired`, key by key.

    Keys outside `managed` are left alone (None: every key is managed).
    """
    have, want = dict(current), dict(desired)
    for key, value in want.items():
        if have.get(key) != value:
            row.setkey(column, key, value)
    for key in have.keys() - want.keys():
        if managed is None or key in managed:
            row.delkey(column, key)


class TxnBuilder:
    """Fills one IDL transaction from actions; collects conflicts and the interfaces it touched."""

    def __init__(self, idl: Any, txn: Any, snapshot: OvsSnapshot, index: NameIndex, root: Row) -> None:
        self.idl, self.txn, self.snap, self.index, self.root = idl, txn, snapshot, index, root
        self.new_bridges: dict[str, Row] = {}
        self.conflicts: list[Conflict] = []
        self.touched: dict[str, Row] = {}  # interfaces written, by name: to check after ovs-vswitchd acted
        self._uuids: dict[str, Any] = {"Bridge": index.bridges, "Port": index.ports, "Interface": index.interfaces}
        self._states: dict[str, Any] = {
            "Bridge": snapshot.bridges,
            "Port": snapshot.ports,
            "Interface": snapshot.interfaces,
        }

    def build(self, actions: Sequence[Action]) -> None:
        """Add every action to the transaction, bridges first so that new ports can join them."""
        for action in sorted(actions, key=lambda a: _ORDER[type(a)]):
            match action:
                case AddBridge(spec) | UpdateBridge(spec):
                    self.ensure_bridge(spec)
                case AddPort(spec) | UpdatePort(spec):
                    self.ensure_port(spec)
                case DeletePort(name):
                    self.delete_port(name)
                case DeleteBridge(name):
                    self.delete_bridge(name)
                case AddController(bridge, cspec) | UpdateController(bridge, cspec):
                    self.ensure_controller(bridge, cspec)
                case DeleteController(bridge, target):
                    self.delete_controller(bridge, target)
                case ReconnectController(bridge, target):
                    self.reconnect_controller(bridge, target)
                case SetSsl(sspec):
                    self.set_ssl(sspec)
                case DeleteSsl():
                    self.delete_ssl()

    # --- lookups -----------------------------------------------------------------------------------

    def _live(self, table: str, name: str) -> Row | None:
        uuid = self._uuids[table].get(name)
        return None if uuid is None else self.idl.tables[table].rows.get(uuid)

    def _owned(self, table: str, name: str) -> bool:
        return bool(self._states[table][name].owned)

    def _foreign(self, table: str, name: str, reason: str) -> None:
        self.conflicts.append(Conflict(table, name, reason))

    def _bridge_for_ports(self, name: str) -> Row | None:
        """The owned bridge `name` (live or inserted by this transaction), else None."""
        if name in self.new_bridges:
            return self.new_bridges[name]
        row = self._live("Bridge", name)
        return row if row is not None and self._owned("Bridge", name) else None

    # --- bridges -----------------------------------------------------------------------------------

    def ensure_bridge(self, spec: BridgeSpec) -> None:
        row = self._live("Bridge", spec.name)
        if row is None:
            row = self.txn.insert(self.idl.tables["Bridge"])
            row.name = spec.name
            row.datapath_type = spec.datapath_type
            row.protocols = list(spec.protocols)
            row.fail_mode = _opt(spec.fail_mode)
            row.other_config = dict(spec.other_config)
            row.external_ids = _marker()
            self.root.addvalue("bridges", row)
            self.new_bridges[spec.name] = row
            return
        if not self._owned("Bridge", spec.name):
            self._foreign("Bridge", spec.name, "exists without tor-agent's marker: not modified")
            return
        current = self.snap.bridges[spec.name]
        if current.datapath_type != spec.datapath_type:
            row.datapath_type = spec.datapath_type
        if current.fail_mode != spec.fail_mode:
            row.fail_mode = _opt(spec.fail_mode)
        for proto in set(current.protocols) - set(spec.protocols):
            row.delvalue("protocols", proto)
        for proto in set(spec.protocols) - set(current.protocols):
            row.addvalue("protocols", proto)
        sync_map(row, "other_config", current.other_config, spec.other_config, spec.other_config_keys)

    def delete_bridge(self, name: str) -> None:
        row = self._live("Bridge", name)
        if row is None:
            return
        if not self._owned("Bridge", name):
            self._foreign("Bridge", name, "exists without tor-agent's marker: not deleted")
            return
        foreign = sorted(p for p in self.snap.bridges[name].ports if not self.snap.ports[p].owned)
        if foreign:
            self._foreign("Bridge", name, f"holds ports tor-agent does not own ({', '.join(foreign)}): not deleted")
            return
        self.root.delvalue("bridges", row)

    # --- ports -------------------------------------------------------------------------------------

    def ensure_port(self, spec: PortSpec) -> None:
        port, iface = self._live("Port", spec.name), self._live("Interface", spec.name)
        for table, row in (("Port", port), ("Interface", iface)):
            if row is not None and not self._owned(table, spec.name):
                self._foreign(table, spec.name, "exists without tor-agent's marker: not modified")
                return
        bridge = self._bridge_for_ports(spec.bridge)
        if bridge is None:
            self._foreign("Port", spec.name, f"bridge {spec.bridge} is missing or not owned by tor-agent")
            return
        iface = self._ensure_interface(spec.interface, iface)
        self.touched[spec.name] = iface
        if port is None:
            port = self.txn.insert(self.idl.tables["Port"])
            port.name = spec.name
            port.interfaces = [iface]
            port.external_ids = _marker()
            bridge.addvalue("ports", port)
            return
        current = self.snap.ports[spec.name]
        if current.interfaces != (spec.name,):
            port.interfaces = [iface]
        if current.bridge != spec.bridge:
            self._move(port, current.bridge, bridge)

    def _move(self, port: Row, old_name: str | None, new: Row) -> None:
        if old_name is not None:
            old = self._live("Bridge", old_name)
            if old is not None and not self._owned("Bridge", old_name):
                self._foreign("Port", port.name, f"is on bridge {old_name}, which tor-agent does not own: not moved")
                return
            if old is not None:
                old.delvalue("ports", port)
        new.addvalue("ports", port)

    def _ensure_interface(self, spec: InterfaceSpec, row: Row | None) -> Row:
        if row is None:
            # A new row starts with every column at its default: write only the others (a thousand
            # tunnels make every column write count).
            row = self.txn.insert(self.idl.tables["Interface"])
            row.name = spec.name
            row.external_ids = _marker()
            if spec.type:
                row.type = spec.type
            if spec.options:
                row.options = dict(spec.options)
            if spec.bfd:
                row.bfd = dict(spec.bfd)
            if spec.mtu_request is not None:
                row.mtu_request = [spec.mtu_request]
            if spec.ofport_request is not None:
                row.ofport_request = [spec.ofport_request]
            return row
        current = self.snap.interfaces[spec.name].spec
        if current.type != spec.type:
            row.type = spec.type
        sync_map(row, "options", current.options, spec.options)
        sync_map(row, "bfd", current.bfd, spec.bfd)
        if current.mtu_request != spec.mtu_request:
            row.mtu_request = _opt(spec.mtu_request)
        if current.ofport_request != spec.ofport_request:
            row.ofport_request = _opt(spec.ofport_request)
        return row

    def delete_port(self, name: str) -> None:
        port = self._live("Port", name)
        if port is None:
            return
        if not self._owned("Port", name):
            self._foreign("Port", name, "exists without tor-agent's marker: not deleted")
            return
        bridge_name = self.snap.ports[name].bridge
        bridge = None if bridge_name is None else self._live("Bridge", bridge_name)
        if bridge_name is None or bridge is None:
            return  # held by no bridge: ovsdb-server collects it by itself
        if not self._owned("Bridge", bridge_name):
            self._foreign("Port", name, f"is on bridge {bridge_name}, which tor-agent does not own: not deleted")
            return
        bridge.delvalue("ports", port)

    # --- controllers -------------------------------------------------------------------------------

    def _controller(self, bridge: str, canonical: str) -> tuple[Row, ControllerState] | None:
        """The live row of `bridge`'s controller `canonical` (any spelling; an owned one first)."""
        states = [c for c in self.snap.controllers_of(bridge) if c.canonical == canonical]
        for state in sorted(states, key=lambda c: not c.owned):
            uuid = self.index.controllers.get((bridge, state.target))
            row = None if uuid is None else self.idl.tables["Controller"].rows.get(uuid)
            if row is not None:
                return row, state
        return None

    def ensure_controller(self, bridge_name: str, spec: ControllerSpec) -> None:
        found = self._controller(bridge_name, spec.target)
        if found is None:
            bridge = self._bridge_for_ports(bridge_name)
            if bridge is None:
                self._foreign("Controller", spec.target, f"bridge {bridge_name} is missing or not owned by tor-agent")
                return
            row = self.txn.insert(self.idl.tables["Controller"])
            row.target = spec.target
            row.inactivity_probe = _opt(spec.inactivity_probe)
            row.max_backoff = _opt(spec.max_backoff)
            row.connection_mode = _opt(spec.connection_mode)
            row.external_ids = _marker()
            bridge.addvalue("controller", row)
            return
        row, state = found
        if not state.owned:
            self._foreign("Controller", spec.target, "exists without tor-agent's marker: not modified")
            return
        current = state.spec
        if current.inactivity_probe != spec.inactivity_probe:
            row.inactivity_probe = _opt(spec.inactivity_probe)
        if current.max_backoff != spec.max_backoff:
            row.max_backoff = _opt(spec.max_backoff)
        if current.connection_mode != spec.connection_mode:
            row.connection_mode = _opt(spec.connection_mode)

    def delete_controller(self, bridge_name: str, target: str) -> None:
        uuid = self.index.controllers.get((bridge_name, target))
        row = None if uuid is None else self.idl.tables["Controller"].rows.get(uuid)
        bridge = self._live("Bridge", bridge_name)
        if row is None or bridge is None:
            return
        state = next((c for c in self.snap.controllers_of(bridge_name) if c.target == target), None)
        if state is None or not state.owned:
            self._foreign("Controller", target, "exists without tor-agent's marker: not deleted")
            return
        bridge.delvalue("controller", row)  # ovsdb-server collects the unreferenced row

    def reconnect_controller(self, bridge_name: str, canonical: str) -> None:
        found = self._controller(bridge_name, canonical)
        if found is None:
            return
        row, state = found
        if not state.owned:
            self._foreign("Controller", canonical, "exists without tor-agent's marker: not reconnected")
            return
        row.target = alternate_target(canonical) if state.target == canonical else canonical

    # --- SSL ---------------------------------------------------------------------------------------

    def set_ssl(self, spec: SslSpec) -> None:
        current = self.snap.ssl
        row = None if self.index.ssl is None else self.idl.tables["SSL"].rows.get(self.index.ssl)
        if row is None or current is None:
            row = self.txn.insert(self.idl.tables["SSL"])
            row.private_key, row.certificate, row.ca_cert = spec.private_key, spec.certificate, spec.ca_cert
            row.external_ids = _marker()
            self.root.ssl = [row]
            return
        if not current.owned:
            self._foreign("SSL", "SSL", "exists without tor-agent's marker: not modified")
            return
        for column in ("private_key", "certificate", "ca_cert"):
            if getattr(current.spec, column) != getattr(spec, column):
                setattr(row, column, getattr(spec, column))

    def delete_ssl(self) -> None:
        current = self.snap.ssl
        if current is None:
            return
        if not current.owned:
            self._foreign("SSL", "SSL", "exists without tor-agent's marker: not deleted")
            return
        self.root.ssl = []

"""The OVS rows planner: desired overlay vs an OVSDB snapshot, as sets, over rows tor-agent owns. Pure.

`diff_overlay(desired, snapshot)` returns a `Plan`: actions for the added, changed and deleted bridges,
ports, controllers and the SSL row, plus conflicts (foreign rows in the way), never touching a row
tor-agent does not own. The controller set of a bridge is replaced in the same transaction as everything
else, so it never passes through zero controllers (which would clear the bridge's flow tables); removing the
last one is refused unless the desired state allows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tor_agent.model.overlay import OvsDesired
from tor_agent.ovs.errors import InterfaceError, OvsError, RowConflict
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
    InterfaceFailure,
    OvsSnapshot,
    ReconnectController,
    SetSsl,
    UpdateBridge,
    UpdateController,
    UpdatePort,
)

_NOT_OURS = "exists without tor-agent's marker: not modified"
_ADDED = (AddBridge, AddPort, AddController)
_CHANGED = (UpdateBridge, UpdatePort, UpdateController, ReconnectController, SetSsl)
_DELETED = (DeleteBridge, DeletePort, DeleteController, DeleteSsl)


@dataclass(frozen=True)
class Plan:
    """The difference between desired and current state, over rows tor-agent owns; `desired` is what it was
    planned for (None for a plan not made by `diff_overlay`)."""

    actions: tuple[Action, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    unchanged: int = 0
    desired: OvsDesired | None = None
    failures: tuple[InterfaceFailure, ...] = ()  # owned interfaces ovs-vswitchd has not set up, as read

    def __bool__(self) -> bool:
        return bool(self.actions)

    def count(self, kind: type | tuple[type, ...]) -> int:
        return sum(isinstance(a, kind) for a in self.actions)

    def changes(self) -> tuple[str, ...]:
        """One line per action."""
        return tuple(map(describe_action, self.actions))

    def findings(self) -> tuple[OvsError, ...]:
        """The rows tor-agent wants but may not touch, and the interfaces ovs-vswitchd did not set up, as errors."""
        return (*(RowConflict(c) for c in self.conflicts), *(InterfaceError((f,)) for f in self.failures))

    def notes(self) -> tuple[str, ...]:
        """Nothing to add: every finding is an error."""
        return ()

    def summary(self) -> str:
        parts = [
            f"{self.count(_ADDED)} added",
            f"{self.count(_CHANGED)} changed",
            f"{self.count(_DELETED)} deleted",
            f"{self.unchanged} unchanged",
        ]
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflicts")
        return ", ".join(parts)


def diff_overlay(desired: OvsDesired, snap: OvsSnapshot) -> Plan:
    """Actions that turn `snap` into `desired`, touching owned rows only."""
    actions: list[Action] = []
    conflicts: list[Conflict] = []
    unchanged = 0
    blocked: set[str] = set()
    for name, spec in desired.bridges.items():
        bridge = snap.bridges.get(name)
        if bridge is None:
            actions.append(AddBridge(spec))
        elif not bridge.owned:
            conflicts.append(Conflict("Bridge", name, _NOT_OURS))
            blocked.add(name)
        elif bridge.matches(spec):
            unchanged += 1
        else:
            actions.append(UpdateBridge(spec))
    for name, port_spec in desired.ports.items():
        if snap.port_matches(port_spec):
            unchanged += 1
        elif port_spec.bridge in blocked:
            conflicts.append(Conflict("Port", name, f"its bridge {port_spec.bridge} is not tor-agent's"))
        elif (clash := _foreign(snap, name)) is not None:
            conflicts.append(clash)
        else:
            actions.append(AddPort(port_spec) if name not in snap.ports else UpdatePort(port_spec))
    actions += [DeletePort(n) for n, p in snap.ports.items() if p.owned and n not in desired.ports]
    for name, bridge in snap.bridges.items():
        if bridge.owned and name not in desired.bridges:
            foreign = sorted(p for p in bridge.ports if p in snap.ports and not snap.ports[p].owned)
            if foreign:
                reason = f"no longer wanted but holds ports tor-agent does not own ({', '.join(foreign)}): kept"
                conflicts.append(Conflict("Bridge", name, reason))
            else:
                actions.append(DeleteBridge(name))
    if snap.controllers is not None:
        for part in (_diff_controllers(desired, snap), _diff_ssl(desired, snap)):
            actions += part.actions
            conflicts += part.conflicts
            unchanged += part.unchanged
    return Plan(tuple(actions), tuple(conflicts), unchanged, desired, snap.owned_failures())


def _diff_controllers(desired: OvsDesired, snap: OvsSnapshot) -> Plan:
    """Controller rows: added, changed and deleted per bridge, never leaving a kept bridge without any."""
    actions: list[Action] = []
    conflicts: list[Conflict] = []
    unchanged = 0
    held: dict[str, list[ControllerState]] = {}
    for state in snap.controllers or ():
        if state.bridge is not None:
            held.setdefault(state.bridge, []).append(state)
    bridge = desired.controller_bridge
    if bridge is not None and desired.controllers:
        here = held.get(bridge, [])
        foreign = {c.canonical for c in here if not c.owned}
        mine = {c.canonical: c for c in sorted(here, key=lambda c: not c.is_connected) if c.owned}
        for target, spec in desired.controllers.items():
            if target in foreign:
                conflicts.append(Conflict("Controller", target, _NOT_OURS))
            elif target not in mine:
                actions.append(AddController(bridge, spec))
            elif mine[target].spec == spec:
                unchanged += 1
            else:
                actions.append(UpdateController(bridge, spec))
    for name, states in sorted(held.items()):
        if name not in desired.bridges or name not in snap.bridges:
            continue  # goes with its bridge
        wanted = desired.controllers if name == bridge else {}
        kept = _kept_rows(states, wanted)
        drop = [c for c in states if c.owned and c not in kept]
        if drop and not kept and not wanted and not desired.allow_controller_removal:
            targets = ", ".join(sorted(c.target for c in drop))
            reason = (
                f"no controller wanted, but removing the last one ({targets}) would clear the bridge's flow "
                "tables: kept (see docs/controllers.md to remove them on purpose)"
            )
            conflicts.append(Conflict("Controller", name, reason))
            continue
        actions += [DeleteController(name, c.target) for c in drop]
    return Plan(tuple(actions), tuple(conflicts), unchanged)


def _kept_rows(states: Sequence[ControllerState], wanted: Mapping[str, object]) -> list[ControllerState]:
    """The rows that stay on a bridge: every foreign one, and one owned row per wanted target (preferring a
    connected one when a target is there twice)."""
    kept = [c for c in states if not c.owned]
    chosen: set[str] = set()
    for c in sorted(states, key=lambda c: not c.is_connected):
        if c.owned and c.canonical in wanted and c.canonical not in chosen:
            chosen.add(c.canonical)
            kept.append(c)
    return kept


def _diff_ssl(desired: OvsDesired, snap: OvsSnapshot) -> Plan:
    """The switch-wide SSL row: set when wanted, removed when tor-agent owns it and it is not wanted."""
    have = snap.ssl
    if desired.ssl is None:
        return Plan((DeleteSsl(),)) if have is not None and have.owned else Plan()
    if have is None:
        return Plan((SetSsl(desired.ssl),))
    if not have.owned:
        return Plan(conflicts=(Conflict("SSL", "SSL", _NOT_OURS),))
    return Plan(unchanged=1) if have.spec == desired.ssl else Plan((SetSsl(desired.ssl),))


def _foreign(snap: OvsSnapshot, name: str) -> Conflict | None:
    port, iface = snap.ports.get(name), snap.interfaces.get(name)
    if port is not None and not port.owned:
        return Conflict("Port", name, _NOT_OURS)
    if iface is not None and not iface.owned:
        return Conflict("Interface", name, _NOT_OURS)
    return None


def describe_action(action: Action) -> str:
    """One line for an OVS action: `add port gre-c6120012 on br-tor (gre, remote_ip 198.18.0.18)`."""
    match action:
        case AddBridge(spec=spec) | UpdateBridge(spec=spec):
            verb = "add" if isinstance(action, AddBridge) else "update"
            return f"{verb} bridge {spec.name} ({spec.datapath_type})"
        case AddPort(spec=spec) | UpdatePort(spec=spec):
            verb = "add" if isinstance(action, AddPort) else "update"
            remote = dict(spec.interface.options).get("remote_ip")
            kind = f" ({spec.interface.type}{f', remote_ip {remote}' if remote else ''})" if spec.interface.type else ""
            return f"{verb} port {spec.name} on {spec.bridge}{kind}"
        case DeletePort(name=name):
            return f"delete port {name}"
        case DeleteBridge(name=name):
            return f"delete bridge {name}"
        case AddController(bridge=bridge, spec=spec) | UpdateController(bridge=bridge, spec=spec):
            verb = "add" if isinstance(action, AddController) else "update"
            return f"{verb} controller {spec.target} on {bridge}"
        case DeleteController(bridge=bridge, target=target):
            return f"delete controller {target} on {bridge}"
        case ReconnectController(bridge=bridge, target=target):
            return f"reconnect controller {target} on {bridge}"
        case SetSsl(spec=spec):
            return f"set SSL (key {spec.private_key}, certificate {spec.certificate}, CA {spec.ca_cert})"
        case DeleteSsl():
            return "delete SSL"
    return str(action)

"""OVSDB snapshots for the tests: what the database holds after a desired state was applied exactly.

Shared by the unit tests of the overlay and controller models (tests/support is on pytest's pythonpath).
"""

from __future__ import annotations

from tor_agent.model.overlay import OvsDesired
from tor_agent.ovs.state import BridgeState, ControllerState, InterfaceState, OvsSnapshot, PortState, SslState


def snapshot_of(
    d: OvsDesired,
    owned: bool = True,
    controllers: tuple[ControllerState, ...] | None = None,
    ssl: SslState | None = None,
) -> OvsSnapshot:
    """OVSDB holding `d`'s bridges and ports exactly (owned unless told otherwise), plus `controllers` and
    `ssl` (controllers None: the Controller table was not read, so controllers are neither compared nor changed)."""
    bridges = {
        b.name: BridgeState(
            b.name,
            owned,
            b.datapath_type,
            b.protocols,
            b.fail_mode,
            b.other_config,
            frozenset(p.name for p in d.ports.values() if p.bridge == b.name),
        )
        for b in d.bridges.values()
    }
    ports = {p.name: PortState(p.name, owned, p.bridge, (p.name,)) for p in d.ports.values()}
    ifaces = {p.name: InterfaceState(p.interface, owned, 1, None) for p in d.ports.values()}
    return OvsSnapshot(bridges, ports, ifaces, controllers=controllers, ssl=ssl)

"""An incremental, name-keyed view of the IDL replica.

Converting IDL rows to plain values costs microseconds per column; walking all rows of a 1000-port switch
on every pass would cost ~17 ms. The IDL's change notifications mark the rows that changed; a snapshot
re-reads only those, and the assembled `OvsSnapshot` is reused until something changes. Comparing the row
key sets each time catches what notifications do not report (the IDL clears its tables silently when it
reloads after a reconnect).

Controller rows change every few seconds on their own (ovs-vswitchd refreshes their `status`): those
status-only changes move `status_generation`, not `generation`, and only the controllers part of the
snapshot is assembled again for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar
from uuid import UUID

from tor_agent.model.overlay import (
    OWNER_KEY,
    OWNER_VALUE,
    ControllerSpec,
    InterfaceSpec,
    SslSpec,
    canonical_target,
    pairs,
)
from tor_agent.ovs.state import BridgeState, ControllerState, InterfaceState, OvsSnapshot, PortState, SslState

T = TypeVar("T")
Row = Any  # ovs.db.idl.Row: untyped


def owned(row: Row) -> bool:
    """True when the row carries tor-agent's ownership marker."""
    return bool(row.external_ids.get(OWNER_KEY) == OWNER_VALUE)


def optional(value: list[Any]) -> Any:
    """An optional OVSDB column (a list of zero or one element) as the element or None."""
    return value[0] if value else None


# Controller columns ovs-vswitchd writes by itself: a change to only these is a status change.
CONTROLLER_STATUS_COLUMNS = frozenset({"is_connected", "role", "status"})


@dataclass(frozen=True)
class BridgeRow:
    state: BridgeState  # `ports` left empty: port names are resolved when the snapshot is assembled
    port_uuids: frozenset[UUID]
    controller_uuids: frozenset[UUID] = frozenset()


@dataclass(frozen=True)
class PortRow:
    name: str
    owned: bool
    iface_uuids: tuple[UUID, ...]


def bridge_row(row: Row) -> BridgeRow:
    state = BridgeState(
        name=row.name,
        owned=owned(row),
        datapath_type=row.datapath_type,
        protocols=tuple(sorted(row.protocols)),
        fail_mode=optional(row.fail_mode),
        other_config=pairs(row.other_config),
        ports=frozenset(),
    )
    return BridgeRow(state, frozenset(p.uuid for p in row.ports), frozenset(c.uuid for c in row.controller))


def controller_row(row: Row) -> ControllerState:
    """A Controller row as a state whose `bridge` is resolved when the snapshot is assembled."""
    spec = ControllerSpec(
        target=canonical_target(row.target),
        inactivity_probe=optional(row.inactivity_probe),
        max_backoff=optional(row.max_backoff),
        connection_mode=optional(row.connection_mode),
    )
    return ControllerState(
        bridge=None,
        target=row.target,
        owned=owned(row),
        spec=spec,
        is_connected=bool(row.is_connected),
        role=optional(row.role),
        status=pairs(row.status),
    )


def ssl_row(row: Row) -> SslState:
    spec = SslSpec(private_key=row.private_key, certificate=row.certificate, ca_cert=row.ca_cert)
    return SslState(owned(row), spec)


def port_row(row: Row) -> PortRow:
    return PortRow(row.name, owned(row), tuple(sorted(i.uuid for i in row.interfaces)))


def interface_state(row: Row) -> InterfaceState:
    spec = InterfaceSpec(
        name=row.name,
        type=row.type,
        options=pairs(row.options),
        bfd=pairs(row.bfd),
        mtu_request=optional(row.mtu_request),
        ofport_request=optional(row.ofport_request),
    )
    return InterfaceState(spec, owned(row), optional(row.ofport), optional(row.error))


def _keys(rows: Mapping[UUID, Row]) -> Iterable[UUID]:
    # The IDL's IndexedRows is a UserDict: its plain dict compares keys at C speed.
    return getattr(rows, "data", rows).keys()


class TableCache(Generic[T]):
    """Converted rows of one IDL table, by UUID; only rows marked dirty (or new) are converted again."""

    def __init__(self, convert: Callable[[Row], T]) -> None:
        self.convert = convert
        self.rows: dict[UUID, T] = {}
        self.dirty: set[UUID] = set()
        self.stale = True

    def refresh(self, live: Mapping[UUID, Row]) -> bool:
        """Bring the cache in line with `live`; True if anything changed."""
        if self.stale:
            self.rows = {uuid: self.convert(row) for uuid, row in live.items()}
            self.dirty.clear()
            self.stale = False
            return True
        changed = False
        keys = _keys(live)
        if self.rows.keys() != keys:
            gone = self.rows.keys() - keys
            for uuid in gone:
                del self.rows[uuid]
            self.dirty |= set(keys) - self.rows.keys()
            changed = bool(gone)
        for uuid in self.dirty:
            row = live.get(uuid)
            if row is None:
                changed |= self.rows.pop(uuid, None) is not None
            else:
                self.rows[uuid] = self.convert(row)
                changed = True
        self.dirty.clear()
        return changed


@dataclass(frozen=True)
class NameIndex:
    """UUIDs by name, for building a transaction without scanning tables."""

    bridges: Mapping[str, UUID]
    ports: Mapping[str, UUID]
    interfaces: Mapping[str, UUID]
    controllers: Mapping[tuple[str, str], UUID] = field(default_factory=dict)  # (bridge, target as written)
    ssl: UUID | None = None


_OVERLAY_TABLES = ("Bridge", "Port", "Interface")
_CONTROLLER_TABLES = ("Bridge", "Controller", "SSL")


class RowCache:
    """The Bridge, Port, Interface, Controller and SSL tables as an `OvsSnapshot`, refreshed incrementally."""

    def __init__(self) -> None:
        self.bridges = TableCache(bridge_row)
        self.ports = TableCache(port_row)
        self.interfaces = TableCache(interface_state)
        self.controllers = TableCache(controller_row)
        self.ssls = TableCache(ssl_row)
        self._by_table: dict[str, TableCache[Any]] = {
            "Bridge": self.bridges,
            "Port": self.ports,
            "Interface": self.interfaces,
            "Controller": self.controllers,
            "SSL": self.ssls,
        }
        self._snapshot: OvsSnapshot | None = None
        self._controllers: tuple[ControllerState, ...] = ()
        self._ssl: SslState | None = None
        self._ssl_uuid: UUID | None = None
        self._stale_parts = {"overlay", "controllers"}
        self._index = NameIndex({}, {}, {})
        self.generation = 0  # moves whenever a row of a cached table may have changed (not for status)
        self.status_generation = 0  # moves whenever a Controller row's status may have changed

    def mark(self, table: str, uuid: UUID, columns: frozenset[str] | None = None) -> None:
        """Called by the IDL's change notification for one row; `columns`: the changed ones, if known."""
        cache = self._by_table.get(table)
        if cache is None:
            return
        cache.dirty.add(uuid)
        if table == "Controller" and columns is not None and columns <= CONTROLLER_STATUS_COLUMNS:
            self.status_generation += 1
        else:
            self.generation += 1
            self.status_generation += table == "Controller"

    def invalidate(self) -> None:
        """Forget everything: the next snapshot re-reads every row (the safe, full pass)."""
        for cache in self._by_table.values():
            cache.stale = True
        self.generation += 1
        self.status_generation += 1

    def _refresh(self, tables: Mapping[str, Any], names: Iterable[str]) -> None:
        for name in names:
            if self._by_table[name].refresh(tables[name].rows):
                if name in _OVERLAY_TABLES:
                    self._stale_parts.add("overlay")
                if name in _CONTROLLER_TABLES:
                    self._stale_parts.add("controllers")

    def _refresh_controllers(self, tables: Mapping[str, Any]) -> None:
        self._refresh(tables, _CONTROLLER_TABLES)
        root = next(iter(tables["Open_vSwitch"].rows.values()), None)
        refs = root.ssl if root is not None else []
        ssl_uuid = refs[0].uuid if refs else None
        if ssl_uuid != self._ssl_uuid:
            self._ssl_uuid = ssl_uuid
            self._stale_parts.add("controllers")
        if "controllers" in self._stale_parts:
            self._assemble_controllers()
            self._stale_parts.discard("controllers")

    def controller_states(self, tables: Mapping[str, Any]) -> tuple[ControllerState, ...]:
        """Every Controller row with its bridge, re-reading only what changed (cheap: no port is read)."""
        self._refresh_controllers(tables)
        return self._controllers

    def snapshot(self, tables: Mapping[str, Any]) -> OvsSnapshot:
        """The current snapshot, re-reading only what changed since the last call."""
        self._refresh(tables, _OVERLAY_TABLES)
        if "overlay" in self._stale_parts or self._snapshot is None:
            self._snapshot = self._assemble()
            self._stale_parts.discard("overlay")
        self._refresh_controllers(tables)
        if self._snapshot.controllers is not self._controllers or self._snapshot.ssl is not self._ssl:
            self._snapshot = replace(self._snapshot, controllers=self._controllers, ssl=self._ssl)
        return self._snapshot

    @property
    def index(self) -> NameIndex:
        """Name -> UUID maps as of the last snapshot."""
        return self._index

    def _assemble(self) -> OvsSnapshot:
        ifaces = self.interfaces.rows
        port_rows = self.ports.rows
        port_bridge: dict[UUID, str] = {}
        bridges: dict[str, BridgeState] = {}
        for b in self.bridges.rows.values():
            names = [port_rows[u].name for u in b.port_uuids if u in port_rows]
            port_bridge.update(dict.fromkeys(b.port_uuids, b.state.name))
            bridges[b.state.name] = replace(b.state, ports=frozenset(names))
        ports = {
            p.name: PortState(
                p.name, p.owned, port_bridge.get(u), tuple(ifaces[i].spec.name for i in p.iface_uuids if i in ifaces)
            )
            for u, p in port_rows.items()
        }
        self._index = replace(
            self._index,
            bridges={b.state.name: u for u, b in self.bridges.rows.items()},
            ports={p.name: u for u, p in port_rows.items()},
            interfaces={i.spec.name: u for u, i in ifaces.items()},
        )
        return OvsSnapshot(bridges, ports, {i.spec.name: i for i in ifaces.values()})

    def _assemble_controllers(self) -> None:
        holder = {u: b.state.name for b in self.bridges.rows.values() for u in b.controller_uuids}
        states = sorted(
            (replace(c, bridge=holder.get(u)) for u, c in self.controllers.rows.items()),
            key=lambda c: (c.bridge or "", c.canonical, c.target),
        )
        by_key = {(holder[u], c.target): u for u, c in self.controllers.rows.items() if u in holder}
        self._controllers = tuple(states)
        self._ssl = self.ssls.rows.get(self._ssl_uuid) if self._ssl_uuid is not None else None
        self._index = replace(self._index, controllers=by_key, ssl=self._ssl_uuid)

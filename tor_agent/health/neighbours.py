"""Is each uplink cabled to the switch the intent expects (`underlay.uplinks[].neighbour`)? Pure, over lldpd's
neighbours (`lldpcli -f json0 show neighbors`, or `-f json`; read by the caller) and the OSPF neighbour of
each uplink.

Two witnesses, each enough to name a miscabling:
- LLDP: the system name and port the far end announces. A numbered /31 cabled to the wrong port forms no OSPF
  adjacency at all, so only LLDP can say who is there. On a netdev leaf LLDP is seen on the physical port
  (ethN), not on the uplink's OVS bridge (docs/design.md), so both names are looked up.
- OSPF: the router ID of the neighbour on the uplink's OSPF interface (in any state: an unnumbered link to the
  wrong switch forms an adjacency with it).

lldpd keeps a neighbour until its TTL runs out (120 s by default), so right after a recabling a port may list
the old neighbour beside the new one: the one heard last counts. Without lldpd the cabling is checked through
OSPF alone and the report says once that LLDP was not read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tor_agent.config.schema import Neighbour
from tor_agent.errors import RuntimeFailure
from tor_agent.health.finding import Finding
from tor_agent.health.underlay import UplinkStatus

LLDP_NEIGHBOURS = ("lldpcli", "-f", "json0", "show", "neighbors")
_AGE = re.compile(r"(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


class LldpUnavailable(RuntimeFailure):
    """lldpd cannot be asked (not installed, not running, no answer, unexpected output); says why."""


@dataclass(frozen=True)
class LldpNeighbour:
    """One neighbour lldpd heard on one local interface."""

    interface: str
    system: str | None  # the far end's system name (its hostname)
    chassis_id: str | None
    port_id: str | None
    port_id_type: str | None  # "ifname", "mac", "local", ...
    port_descr: str | None
    age_s: int | None  # since lldpd heard from it first (its current incarnation)

    @property
    def port(self) -> str | None:
        """The far end's interface name: the port ID when it is one, else the port description."""
        if self.port_id_type == "ifname" and self.port_id:
            return self.port_id
        return self.port_descr or self.port_id

    def __str__(self) -> str:
        return f"{self.system or self.chassis_id or '?'}:{self.port or '?'}"


def parse_lldp(doc: Any) -> tuple[LldpNeighbour, ...]:
    """lldpd's neighbours from `lldpcli -f json0|json show neighbors`: json0 keeps one shape, json makes a list
    of one item an object and keys interfaces and chassis by name; both are read."""
    if not isinstance(doc, dict) or "lldp" not in doc:
        raise LldpUnavailable(f"`{' '.join(LLDP_NEIGHBOURS)}`: unexpected output: no `lldp` object")
    found = []
    for top in _items(doc["lldp"]):
        for entry in _items(top.get("interface") if isinstance(top, dict) else None):
            found += _entries(entry)
    return tuple(found)


def _items(value: Any) -> list[Any]:
    """A list as it is, an object as a list of one, nothing as none."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def _entries(entry: Any) -> list[LldpNeighbour]:
    if not isinstance(entry, dict):
        return []
    if isinstance(entry.get("name"), str):  # json0: {"name": "eth1", "chassis": [...], "port": [...]}
        return [_neighbour(entry["name"], entry)]
    return [_neighbour(name, body) for name, body in entry.items() if isinstance(body, dict)]  # json: {"eth1": {...}}


def _neighbour(interface: str, body: dict[str, Any]) -> LldpNeighbour:
    system, chassis_id = _chassis(body.get("chassis"))
    port = _first(body.get("port"))
    port = port if isinstance(port, dict) else {}
    port_id = _first(port.get("id"))
    port_id = port_id if isinstance(port_id, dict) else {}
    return LldpNeighbour(
        interface=interface,
        system=system,
        chassis_id=chassis_id,
        port_id=_text(port_id.get("value")),
        port_id_type=_text(port_id.get("type")),
        port_descr=_text(port.get("descr")),
        age_s=_age(_text(body.get("age"))),
    )


def _chassis(value: Any) -> tuple[str | None, str | None]:
    """(system name, chassis ID) from json0's `[{"id": [...], "name": [...]}]` or json's `{"NAME": {"id": ...}}`
    (`{"id": ...}` when the far end sends no system name)."""
    chassis = _first(value)
    if not isinstance(chassis, dict):
        return None, None
    if "id" not in chassis and len(chassis) == 1:
        ((name, inner),) = chassis.items()
        return str(name), _id(inner.get("id") if isinstance(inner, dict) else None)
    return _text(chassis.get("name")), _id(chassis.get("id"))


def _id(value: Any) -> str | None:
    found = _first(value)
    return _text(found.get("value")) if isinstance(found, dict) else _text(found)


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _text(value: Any) -> str | None:
    """A string from `"x"`, `[{"value": "x"}]` or `{"value": "x"}`."""
    value = _first(value)
    if isinstance(value, dict):
        value = value.get("value")
    return value if isinstance(value, str) and value else None


def _age(text: str | None) -> int | None:
    match = _AGE.fullmatch(text or "")
    if match is None:
        return None
    days, h, m, s = (int(g or 0) for g in match.groups())
    return ((days * 24 + h) * 60 + m) * 60 + s


# --- the check -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CablingProblem(Finding):
    """An uplink cabled to another switch or port than its `neighbour` says."""

    kind: Literal["cabling"]


@dataclass(frozen=True)
class UplinkCabling:
    """One uplink with an expected neighbour, and what LLDP and OSPF found there."""

    status: UplinkStatus
    expected: Neighbour
    lldp: LldpNeighbour | None

    @property
    def lldp_ok(self) -> bool | None:
        """Whether LLDP shows the expected switch and port; None: LLDP shows nobody."""
        if self.lldp is None:
            return None
        port = self.lldp.port
        return same_system(self.lldp.system, self.expected.node) and (port is None or port == self.expected.port)

    @property
    def ospf_ok(self) -> bool | None:
        """Whether the OSPF neighbour has the expected router ID; None: no OSPF neighbour."""
        n = self.status.neighbor
        return None if n is None else n.router_id == self.expected.router_id

    def problem(self) -> CablingProblem | None:
        """The miscabling, naming expected and found; None when nothing contradicts the expectation."""
        if self.lldp_ok is not False and self.ospf_ok is not False:
            return None
        found = []
        if self.lldp is not None:
            found.append(f"{self.lldp} (LLDP)")
        if self.status.neighbor is not None:
            found.append(f"router ID {self.status.neighbor.router_id} (OSPF neighbour)")
        e = self.expected
        message = f"cabled to {' and '.join(found)}, expected {e.node}:{e.port} ({e.router_id})"
        return CablingProblem("cabling", self.status.subject, message)

    def as_json(self) -> dict[str, Any]:
        e, n = self.expected, self.status.neighbor
        return {
            "path": self.status.where,
            "name": self.status.uplink.name,
            "expected": {"node": e.node, "router_id": str(e.router_id), "port": e.port},
            "lldp": {"system": self.lldp.system, "port": self.lldp.port} if self.lldp is not None else None,
            "ospf_router_id": str(n.router_id) if n is not None else None,
            "ok": self.problem() is None,
        }


@dataclass(frozen=True)
class Cabling:
    """Every uplink with an expected neighbour; `lldp_error` says why LLDP was not read (None: it was)."""

    uplinks: tuple[UplinkCabling, ...]
    lldp_error: str | None

    def problems(self) -> list[CablingProblem]:
        return [p for p in (u.problem() for u in self.uplinks) if p is not None]

    def notes(self) -> list[str]:
        """What was not checked: LLDP unreadable (said once), or an uplink where neither witness answers."""
        notes = [f"cabling not checked by LLDP: {self.lldp_error}"] if self.lldp_error else []
        for u in self.uplinks:
            if self.lldp_error is None and u.lldp is None and not u.ospf_ok:
                notes.append(f"{u.status.subject}: no LLDP neighbour (does {u.expected.node} run lldpd?)")
        return notes

    def summary(self) -> str:
        """`2/2 uplinks as planned (LLDP 2, OSPF router ID 2)`."""
        fine = sum(u.problem() is None for u in self.uplinks)
        lldp = sum(u.lldp_ok is True for u in self.uplinks)
        ospf = sum(u.ospf_ok is True for u in self.uplinks)
        return f"{fine}/{len(self.uplinks)} uplinks as planned (confirmed by LLDP: {lldp}, by OSPF router ID: {ospf})"

    def as_json(self) -> dict[str, Any]:
        return {"uplinks": [u.as_json() for u in self.uplinks], "lldp_error": self.lldp_error, "notes": self.notes()}


def expectations(uplinks: Sequence[UplinkStatus]) -> list[UplinkStatus]:
    """The uplinks whose intent names the expected neighbour."""
    return [u for u in uplinks if u.uplink.neighbour is not None]


def check_cabling(
    uplinks: Sequence[UplinkStatus], lldp: Sequence[LldpNeighbour] | None, lldp_error: str | None = None
) -> Cabling:
    """Join each uplink that has an expected neighbour with what LLDP (None: not read) heard on it."""
    checked = []
    for u in expectations(uplinks):
        assert u.uplink.neighbour is not None
        heard = [n for n in lldp or () if n.interface in (u.uplink.name, u.interface)]
        checked.append(UplinkCabling(u, u.uplink.neighbour, _latest(heard, u.uplink.name)))
    return Cabling(tuple(checked), lldp_error)


def _latest(heard: list[LldpNeighbour], physical: str) -> LldpNeighbour | None:
    """The neighbour heard on the physical port before its bridge's, then the youngest (a recabled port
    lists its old neighbour until that one's TTL runs out)."""
    if not heard:
        return None
    return min(heard, key=lambda n: (n.interface != physical, n.age_s if n.age_s is not None else 1 << 62))


def same_system(found: str | None, expected: str) -> bool:
    """LLDP's system name is the hostname, maybe with its domain: `spine01.dc1.example.net` is `spine01`."""
    if found is None:
        return False
    found, expected = found.lower(), expected.lower()
    return found == expected or found.startswith(expected + ".") or expected.startswith(found + ".")

"""FRR's view of the underlay, parsed from the JSON of FRR 8.4's `show ... json` commands. Pure.

Samples of every command, captured from FRR 8.4.4, are under tests/unit/data/health/.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Protocol

from tor_agent.errors import RuntimeFailure

OSPF_NEIGHBORS = "show ip ospf neighbor json"
BFD_PEERS = "show bfd peers json"
OSPF_ROUTES = "show ip ospf route json"
ZEBRA_ROUTES = "show ip route json"


class ShowJson(Protocol):
    """Anything that runs an FRR `show ... json` command and returns the parsed JSON: tor_agent.frr's Vtysh,
    or recorded answers in tests."""

    def show_json(self, command: str) -> Any:
        """The parsed output of `command`."""


class FrrOutputError(RuntimeFailure):
    """FRR answered with JSON of an unexpected shape; names the command."""

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        super().__init__(f"`{command}`: unexpected output: {message}")


@dataclass(frozen=True, order=True)
class Nexthop:
    """Where a route leads, the same way in every layer: gateway (None: directly attached) and interface."""

    ifname: str
    gateway: IPv4Address | None = None

    def __str__(self) -> str:
        return f"{self.gateway} {self.ifname}" if self.gateway is not None else f"{self.ifname} (attached)"


@dataclass(frozen=True)
class OspfNeighbor:
    """One OSPF neighbour as `show ip ospf neighbor json` lists it."""

    router_id: IPv4Address
    address: IPv4Address
    ifname: str
    state: str  # "Full/-" on point-to-point links
    uptime_ms: int | None  # None until the adjacency is up

    @property
    def full(self) -> bool:
        """The adjacency is Full: routes go over it."""
        return self.state.split("/", 1)[0] == "Full"


@dataclass(frozen=True)
class BfdPeer:
    """One single-hop BFD session as `show bfd peers json` lists it."""

    peer: IPv4Address
    ifname: str | None
    status: str  # up | down | init | shutdown
    uptime_s: int | None
    diagnostic: str

    @property
    def up(self) -> bool:
        """The session is up."""
        return self.status == "up"


@dataclass(frozen=True)
class ZebraRoute:
    """zebra's selected route for a prefix: its protocol and the nexthops it installed in the FIB."""

    protocol: str
    installed: bool
    nexthops: tuple[Nexthop, ...]


def parse_ospf_neighbors(doc: Any) -> tuple[OspfNeighbor, ...]:
    """`show ip ospf neighbor json`."""
    try:
        return tuple(
            OspfNeighbor(
                router_id=IPv4Address(router_id),
                address=IPv4Address(n["ifaceAddress"] if "ifaceAddress" in n else n["address"]),
                ifname=str(n["ifaceName"]).split(":", 1)[0],  # "eth1:198.18.1.1"; ':' is never in a Linux name
                state=str(n.get("nbrState") or n["state"]),
                uptime_ms=int(n["upTimeInMsec"]) if "upTimeInMsec" in n else None,
            )
            for router_id, entries in _mapping(doc["neighbors"]).items()
            for n in entries
        )
    except (KeyError, TypeError, ValueError) as e:
        raise FrrOutputError(OSPF_NEIGHBORS, repr(e)) from e


def parse_bfd_peers(doc: Any) -> tuple[BfdPeer, ...]:
    """`show bfd peers json` (single-hop sessions)."""
    try:
        return tuple(
            BfdPeer(
                peer=IPv4Address(p["peer"]),
                ifname=p.get("interface"),
                status=str(p["status"]),
                uptime_s=int(p["uptime"]) if "uptime" in p else None,
                diagnostic=str(p.get("diagnostic", "")),
            )
            for p in doc
            if not p.get("multihop") and ":" not in str(p["peer"])
        )
    except (KeyError, TypeError, ValueError) as e:
        raise FrrOutputError(BFD_PEERS, repr(e)) from e


def parse_ospf_routes(doc: Any) -> dict[IPv4Network, tuple[Nexthop, ...]]:
    """`show ip ospf route json`: network routes and their nexthops (router entries are skipped)."""
    routes: dict[IPv4Network, tuple[Nexthop, ...]] = {}
    try:
        for prefix, route in _mapping(doc).items():
            network = _network(prefix)
            if network is None or not isinstance(route, Mapping) or str(route.get("routeType", "")).startswith("R"):
                continue
            routes[network] = tuple(sorted(_ospf_nexthop(nh) for nh in route.get("nexthops", ())))
    except (KeyError, TypeError, ValueError) as e:
        raise FrrOutputError(OSPF_ROUTES, repr(e)) from e
    return routes


def parse_zebra_routes(doc: Any) -> dict[IPv4Network, ZebraRoute]:
    """`show ip route json`: per prefix, the selected route and its nexthops in the FIB."""
    routes: dict[IPv4Network, ZebraRoute] = {}
    try:
        for prefix, entries in _mapping(doc).items():
            selected = next((r for r in entries if r.get("selected")), None)
            network = _network(prefix)
            if selected is None or network is None:
                continue
            routes[network] = ZebraRoute(
                protocol=str(selected["protocol"]),
                installed=bool(selected.get("installed")),
                nexthops=tuple(sorted(_zebra_nexthop(nh) for nh in selected.get("nexthops", ()) if nh.get("fib"))),
            )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FrrOutputError(ZEBRA_ROUTES, repr(e)) from e
    return routes


def _ospf_nexthop(nh: Mapping[str, Any]) -> Nexthop:
    attached = nh.get("directlyAttachedTo") or nh.get("directly attached to")
    if attached:
        return Nexthop(ifname=str(attached))
    return Nexthop(ifname=str(nh["via"]), gateway=IPv4Address(str(nh["ip"]).strip()))


def _zebra_nexthop(nh: Mapping[str, Any]) -> Nexthop:
    ip = nh.get("ip")
    return Nexthop(ifname=str(nh.get("interfaceName", "?")), gateway=IPv4Address(ip) if ip else None)


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _network(text: str) -> IPv4Network | None:
    if "/" not in text:
        return None  # OSPF's router entries are keyed by router ID: "198.18.0.1" would parse as a /32 route
    try:
        return IPv4Network(text)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
        return None

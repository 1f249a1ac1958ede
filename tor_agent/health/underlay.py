"""Underlay health: collect FRR's and the kernel's state, join it with the intent, verify it.

`collect` is the only I/O (FRR JSON through an injected `ShowJson`, the kernel FIB through an injected
route reader; the CLI passes tor_agent.frr's Vtysh and tor_agent.net.kernel_routes); `status` and `verify`
are pure, so they are tested with recorded FRR output.

What `verify` demands, layer by layer (FRR topotests' order, so a failure names its layer):
1. every configured uplink has a Full OSPF neighbour (and, with BFD on, an up BFD session);
2. every known VTEP (see vteps.py) has an OSPF route, zebra selected that OSPF route and installed the
   same nexthops in the FIB, and the kernel's route for it (longest match, dumped: multipath routes are
   invisible to a lookup) has exactly those nexthops, all live;
3. on a leaf, that route spreads over every healthy uplink: ECMP width = healthy uplinks (among the
   cheapest by configured cost, at most `maximum_paths`); fewer healthy uplinks than configured is
   reported once as a reduced ECMP width. A spine only gets checks 1 and 2: its paths to other
   switches depend on the leaves, not on its own links.

A neighbour that advertises max-metric (drained for maintenance, `tor-agent drain`) is planned, not degraded:
its uplink leaves the expected ECMP set (unless every healthy uplink leads to a drained router: then OSPF
still uses them) and the report says so in a note instead of a problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Literal, TypeVar

from tor_agent.config.schema import Intent, Uplink
from tor_agent.health.finding import Finding
from tor_agent.health.frr_state import (
    BFD_PEERS,
    OSPF_NEIGHBORS,
    OSPF_ROUTES,
    ZEBRA_ROUTES,
    BfdPeer,
    Nexthop,
    OspfNeighbor,
    ShowJson,
    ZebraRoute,
    parse_bfd_peers,
    parse_ospf_neighbors,
    parse_ospf_routes,
    parse_zebra_routes,
)
from tor_agent.health.lsdb import ROUTER_LSAS, parse_lsdb
from tor_agent.model.peers import known_vteps
from tor_agent.model.routes import KernelRoute, longest_match
from tor_agent.model.underlay import ospf_interfaces

V = TypeVar("V")
DegradedKind = Literal["read", "uplink", "bfd", "route", "ecmp"]


@dataclass(frozen=True)
class UnderlayState:
    """Everything one health check reads: FRR's neighbours, sessions and routes, and the kernel FIB."""

    neighbors: tuple[OspfNeighbor, ...]
    bfd_peers: tuple[BfdPeer, ...]
    ospf_routes: Mapping[IPv4Network, tuple[Nexthop, ...]]
    zebra_routes: Mapping[IPv4Network, ZebraRoute]
    kernel_routes: tuple[KernelRoute, ...]
    drained: frozenset[IPv4Address] = frozenset()  # routers advertising max-metric, from the area's LSDB


def collect(
    frr: ShowJson, read_kernel_routes: Callable[[], tuple[KernelRoute, ...]], bfd: bool = True
) -> UnderlayState:
    """Read FRR (five `show ... json` commands; four with `bfd` False: bfdd may not run) and then the kernel FIB."""
    return UnderlayState(
        neighbors=parse_ospf_neighbors(frr.show_json(OSPF_NEIGHBORS)),
        bfd_peers=parse_bfd_peers(frr.show_json(BFD_PEERS)) if bfd else (),
        ospf_routes=parse_ospf_routes(frr.show_json(OSPF_ROUTES)),
        zebra_routes=parse_zebra_routes(frr.show_json(ZEBRA_ROUTES)),
        kernel_routes=read_kernel_routes(),
        drained=parse_lsdb(frr.show_json(ROUTER_LSAS)).drained(),
    )


@dataclass(frozen=True)
class UplinkStatus:
    """One configured uplink: its OSPF interface, the neighbour there and its BFD session."""

    where: str  # "underlay.uplinks[1]"
    uplink: Uplink
    interface: str  # where OSPF runs: the uplink, or its OVS bridge on a netdev leaf
    neighbor: OspfNeighbor | None
    bfd: BfdPeer | None
    drained: bool = False  # the neighbour advertises max-metric: no shortest path crosses it

    @property
    def healthy(self) -> bool:
        """A Full adjacency: OSPF routes over this uplink."""
        return self.neighbor is not None and self.neighbor.full

    @property
    def subject(self) -> str:
        """How messages name it: `underlay.uplinks[1] eth2` (and the bridge, when OSPF runs there)."""
        via = f" ({self.interface})" if self.interface != self.uplink.name else ""
        return f"{self.where} {self.uplink.name}{via}"


@dataclass(frozen=True)
class LayerRoute:
    """One layer's route to a VTEP: the prefix that matched and its (live) nexthops."""

    prefix: IPv4Network
    nexthops: tuple[Nexthop, ...]
    protocol: str | None = None


@dataclass(frozen=True)
class VtepStatus:
    """The route to one VTEP as OSPF, zebra and the kernel see it."""

    address: IPv4Address
    ospf: LayerRoute | None
    zebra: LayerRoute | None
    kernel: LayerRoute | None

    @property
    def width(self) -> int:
        """Live ECMP nexthops in the kernel FIB."""
        return len(self.kernel.nexthops) if self.kernel is not None else 0


@dataclass(frozen=True)
class UnderlayStatus:
    """The joined view `tor-agent status` prints and `verify` judges."""

    hostname: str
    role: str
    uplinks: tuple[UplinkStatus, ...]
    bfd_peers: tuple[BfdPeer, ...]
    vteps: tuple[VtepStatus, ...]
    bfd_enabled: bool
    expected: frozenset[str] | None  # leaf: the interfaces every VTEP route must use now; None: not checked
    configured: frozenset[str] | None  # leaf: the same with every uplink healthy

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (addresses as strings)."""
        return {
            "hostname": self.hostname,
            "role": self.role,
            "notes": self.notes(),
            "uplinks": [_uplink_json(u) for u in self.uplinks],
            "bfd_peers": [_bfd_json(p) for p in self.bfd_peers],
            "vteps": [_vtep_json(v) for v in self.vteps],
            "ecmp": {
                "expected_interfaces": sorted(self.expected) if self.expected is not None else None,
                "configured_interfaces": sorted(self.configured) if self.configured is not None else None,
            },
        }

    def notes(self) -> list[str]:
        """What is planned rather than wrong: uplinks whose neighbour is drained."""
        return [
            f"{u.subject}: neighbour {u.neighbor.router_id} is drained (max-metric): "
            + ("ECMP avoids it by plan" if self.role == "leaf" else "it forwards only as a last resort")
            for u in self.uplinks
            if u.drained and u.neighbor is not None
        ]


@dataclass(frozen=True)
class Degraded(Finding):
    """One thing wrong with the underlay; `subject` names the uplink or VTEP."""

    kind: DegradedKind


def status(state: UnderlayState, intent: Intent) -> UnderlayStatus:
    """Join what was read with the intent: per uplink, per VTEP."""
    uplinks = tuple(
        _uplink_status(f"underlay.uplinks[{i}]", u, iface.name, state)
        for i, (u, iface) in enumerate(zip(intent.underlay.uplinks, ospf_interfaces(intent), strict=True))
    )
    vteps = tuple(_vtep_status(vtep, state) for vtep in known_vteps(intent, state.ospf_routes))
    leaf = intent.node.role == "leaf"
    max_paths = intent.underlay.ospf.maximum_paths
    healthy = [u for u in uplinks if u.healthy]
    undrained = [u for u in healthy if not u.drained] or healthy  # all drained: OSPF still uses them
    return UnderlayStatus(
        hostname=intent.node.hostname,
        role=intent.node.role,
        uplinks=uplinks,
        bfd_peers=state.bfd_peers,
        vteps=vteps,
        bfd_enabled=bfd_enabled(intent),
        expected=_ecmp_interfaces(undrained, max_paths) if leaf else None,
        configured=_ecmp_interfaces(uplinks, max_paths) if leaf else None,
    )


def bfd_enabled(intent: Intent) -> bool:
    """True when the intent runs BFD on the OSPF links."""
    bfd = intent.underlay.ospf.bfd
    return bfd is not None and bfd.enabled


def verify(state: UnderlayState, intent: Intent) -> list[Degraded]:
    """Every degraded item, uplinks first, then VTEP routes; empty when the underlay is healthy."""
    return judge(status(state, intent))


def judge(st: UnderlayStatus) -> list[Degraded]:
    """The degraded items of an already joined status."""
    problems: list[Degraded] = []
    for u in st.uplinks:
        problems.extend(_uplink_problems(u, st.bfd_enabled))
    reduced: dict[int, list[IPv4Address]] = {}
    expected = st.expected or frozenset()
    planned = frozenset(u.interface for u in st.uplinks if u.healthy and u.drained) - expected  # not degraded
    for v in st.vteps:
        found = _vtep_problems(v, st.expected)
        problems.extend(found)
        if not found and st.configured is not None and v.width < len(st.configured - planned):
            reduced.setdefault(v.width, []).append(v.address)
    for width, vteps in sorted(reduced.items()):
        down = sorted(st.configured - expected - planned) if st.configured is not None else []
        problems.append(
            Degraded(
                "ecmp",
                "ECMP",
                f"width reduced to {width} of {len(st.configured or ())} uplinks"
                f"{' (' + ', '.join(down) + ' down)' if down else ''} for {len(vteps)} VTEP(s): "
                + ", ".join(map(str, vteps)),
            )
        )
    return problems


# --- joining -----------------------------------------------------------------------------------------


def _uplink_status(where: str, uplink: Uplink, interface: str, state: UnderlayState) -> UplinkStatus:
    here = [n for n in state.neighbors if n.ifname == interface]
    neighbor = next((n for n in here if n.full), here[0] if here else None)
    peers = [p for p in state.bfd_peers if p.ifname == interface]
    bfd = next((p for p in peers if neighbor is not None and p.peer == neighbor.address), peers[0] if peers else None)
    drained = neighbor is not None and neighbor.router_id in state.drained
    return UplinkStatus(where=where, uplink=uplink, interface=interface, neighbor=neighbor, bfd=bfd, drained=drained)


def _vtep_status(vtep: IPv4Address, state: UnderlayState) -> VtepStatus:
    ospf = _lpm(state.ospf_routes, vtep)
    zebra = _lpm(state.zebra_routes, vtep)
    kernel = longest_match(state.kernel_routes, vtep)
    return VtepStatus(
        address=vtep,
        ospf=LayerRoute(ospf[0], ospf[1], "ospf") if ospf is not None else None,
        zebra=LayerRoute(zebra[0], zebra[1].nexthops, zebra[1].protocol) if zebra is not None else None,
        kernel=(
            LayerRoute(
                kernel.prefix,
                tuple(sorted(Nexthop(nh.ifname, nh.gateway) for nh in kernel.live_nexthops())),
                kernel.protocol,
            )
            if kernel is not None
            else None
        ),
    )


def _lpm(routes: Mapping[IPv4Network, V], address: IPv4Address) -> tuple[IPv4Network, V] | None:
    matches = [prefix for prefix in routes if address in prefix]
    if not matches:
        return None
    best = max(matches, key=lambda p: p.prefixlen)
    return best, routes[best]


def _ecmp_interfaces(uplinks: Sequence[UplinkStatus], maximum_paths: int) -> frozenset[str] | None:
    """The interfaces equal-cost routes should use: the cheapest of `uplinks` by configured cost.

    None when that cannot be known: some costs set and others left to FRR's auto-cost, or more
    candidates than `maximum_paths` (FRR then picks which ones).
    """
    costs = {u.uplink.cost for u in uplinks}
    if len(costs) > 1 and None in costs:
        return None
    cheapest = min((c for c in costs if c is not None), default=None)
    chosen = frozenset(u.interface for u in uplinks if u.uplink.cost == cheapest)
    return chosen if len(chosen) <= maximum_paths else None


# --- judging -----------------------------------------------------------------------------------------


def _uplink_problems(u: UplinkStatus, bfd_enabled: bool) -> list[Degraded]:
    if u.neighbor is None:
        return [Degraded("uplink", u.subject, f"no OSPF neighbour on {u.interface}")]
    n = u.neighbor
    if not n.full:
        return [Degraded("uplink", u.subject, f"OSPF neighbour {n.router_id} ({n.address}) is {n.state}, not Full")]
    if bfd_enabled and (u.bfd is None or not u.bfd.up):
        state = "no BFD session" if u.bfd is None else f"BFD session with {u.bfd.peer} is {u.bfd.status}"
        diag = f" (diagnostic: {u.bfd.diagnostic})" if u.bfd is not None and u.bfd.diagnostic else ""
        return [Degraded("bfd", u.subject, f"{state}{diag}: a silent failure would take the dead interval to detect")]
    return []


def _vtep_problems(v: VtepStatus, expected: frozenset[str] | None) -> list[Degraded]:
    subject = f"VTEP {v.address}"
    if v.ospf is None:
        return [Degraded("route", subject, "no OSPF route")]
    problems: list[Degraded] = []
    ospf = v.ospf
    if v.zebra is None:
        problems.append(Degraded("route", subject, "zebra has no route"))
    elif v.zebra.protocol != "ospf" or v.zebra.prefix != ospf.prefix:
        problems.append(
            Degraded("route", subject, f"zebra selected a {v.zebra.protocol} route {v.zebra.prefix}, not OSPF's")
        )
    elif v.zebra.nexthops != ospf.nexthops:
        problems.append(
            Degraded("route", subject, f"zebra FIB {_hops(v.zebra.nexthops)} differs from OSPF {_hops(ospf.nexthops)}")
        )
    problems.extend(_kernel_problems(subject, v, ospf))
    if problems or expected is None:
        return problems
    used = frozenset(nh.ifname for nh in ospf.nexthops)
    if used != expected or v.width != len(expected):
        return [
            Degraded(
                "ecmp",
                subject,
                f"{v.width} ECMP nexthop(s) {_hops(ospf.nexthops)}, expected {len(expected)}: "
                f"one per healthy uplink ({', '.join(sorted(expected)) or 'none'})",
            )
        ]
    return []


def _kernel_problems(subject: str, v: VtepStatus, ospf: LayerRoute) -> list[Degraded]:
    kernel = v.kernel
    if kernel is None:
        return [Degraded("route", subject, "no route in the kernel FIB")]
    if kernel.prefix != ospf.prefix:
        uses = f"the kernel FIB uses {kernel.prefix} ({kernel.protocol}), not {ospf.prefix}"
        return [Degraded("route", subject, uses)]
    if not kernel.nexthops:
        return [
            Degraded(
                "route",
                subject,
                "the kernel FIB route has no live nexthop (all dead, or a kernel nexthop group: "
                "FRR must run with `no zebra nexthop kernel enable`)",
            )
        ]
    if kernel.nexthops != ospf.nexthops:
        return [
            Degraded("route", subject, f"kernel FIB {_hops(kernel.nexthops)} differs from OSPF {_hops(ospf.nexthops)}")
        ]
    return []


def _hops(nexthops: Iterable[Nexthop]) -> str:
    return "[" + ", ".join(map(str, nexthops)) + "]"


# --- JSON --------------------------------------------------------------------------------------------


def _uplink_json(u: UplinkStatus) -> dict[str, Any]:
    n = u.neighbor
    return {
        "path": u.where,
        "name": u.uplink.name,
        "interface": u.interface,
        "healthy": u.healthy,
        "neighbor": (
            {"router_id": str(n.router_id), "address": str(n.address), "state": n.state, "uptime_ms": n.uptime_ms}
            if n is not None
            else None
        ),
        "bfd": _bfd_json(u.bfd) if u.bfd is not None else None,
    }


def _bfd_json(p: BfdPeer) -> dict[str, Any]:
    return {
        "peer": str(p.peer),
        "interface": p.ifname,
        "status": p.status,
        "uptime_s": p.uptime_s,
        "diagnostic": p.diagnostic,
    }


def _layer_json(r: LayerRoute | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "prefix": str(r.prefix),
        "protocol": r.protocol,
        "nexthops": [
            {"gateway": str(nh.gateway) if nh.gateway is not None else None, "interface": nh.ifname}
            for nh in r.nexthops
        ],
    }


def _vtep_json(v: VtepStatus) -> dict[str, Any]:
    return {
        "address": str(v.address),
        "width": v.width,
        "ospf": _layer_json(v.ospf),
        "zebra": _layer_json(v.zebra),
        "kernel": _layer_json(v.kernel),
    }

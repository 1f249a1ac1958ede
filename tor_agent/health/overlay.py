"""Overlay health: which peers should have a tunnel, and per peer its port, ofport, BFD state and the route it
rides on (the OVS route and uplink on a netdev leaf, the kernel's underlay route). Pure, over state read by
the caller (`OverlayState`; tor_agent.health.readers reads it through the drivers). Which peers should
have a tunnel is decided by tor_agent.model.peers, as the agent decides it.

`verify` fails on a missing or broken tunnel: an expected peer without a port, an interface ovs-vswitchd
did not set up (no ofport, an error), a GRE key other than the intent's `tunnels.key`, a BFD session not up
(with `tunnels.bfd`), on a netdev leaf no OVS route (or one over a nexthop the kernel no longer has), and a
tunnel tor-agent owns to a peer that should not have one. Both show the key mode (`tunnels.key`: a fixed
key, `flow`, or none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Literal

from tor_agent.config.schema import Intent
from tor_agent.errors import TorAgentError
from tor_agent.health.finding import Finding
from tor_agent.model.peers import select_peers, uplink_bridges
from tor_agent.model.routes import KernelRoute, OvsRoute, longest_match

ProblemKind = Literal["tunnel", "read"]
_NOT_A_PEER = "not a peer: neither static nor an OSPF /32 in the discovery prefix"

# --- what was read ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TunnelRow:
    """A GRE interface as OVSDB has it."""

    name: str
    remote: IPv4Address | None
    owned: bool
    ofport: int | None  # None until ovs-vswitchd has seen it; -1 when it failed
    error: str | None
    key: str | None = None  # options:key: a number, "flow", or None (no key)


@dataclass(frozen=True)
class OverlayState:
    """Everything the overlay check reads: OVSDB's tunnels, BFD sessions, OVS's routes, the kernel's routes."""

    tunnels: tuple[TunnelRow, ...]
    bfd: Mapping[str, str]  # interface -> BFD session state (up, down, init, admin_down)
    ovs_routes: tuple[OvsRoute, ...] | None  # None: not read (not a netdev leaf)
    kernel_routes: tuple[KernelRoute, ...]


# --- joined with the intent ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TunnelStatus:
    """One peer: what the intent and the underlay expect, and what OVS has."""

    peer: IPv4Address
    expected: bool  # the peer should have a tunnel now
    port: str | None  # the tunnel port, None: none
    ofport: int | None = None
    error: str | None = None
    key: str | None = None  # the port's options:key as OVSDB has it
    bfd: str | None = None  # the BFD session's state; None: BFD off or no session
    ovs_route: OvsRoute | None = None  # netdev leaves: the route OVS encapsulates with
    underlay: KernelRoute | None = None  # the kernel's route to the peer
    reason: str | None = None  # why no tunnel is expected

    @property
    def uplink(self) -> str | None:
        """The uplink bridge the tunnel leaves by (netdev leaves)."""
        return self.ovs_route.device if self.ovs_route is not None else None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "peer": str(self.peer),
            "expected": self.expected,
            "port": self.port,
            "ofport": self.ofport,
            "error": self.error,
            "key": self.key,
            "bfd": self.bfd,
            "uplink": self.uplink,
            "ovs_route": str(self.ovs_route) if self.ovs_route is not None else None,
            "underlay_route": _kernel_route(self.underlay),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class OverlayStatus:
    """Every peer of the switch's overlay, expected or present."""

    bridge: str
    datapath: str
    bfd: bool  # tunnels.bfd: BFD must be up on every tunnel
    tunnels: tuple[TunnelStatus, ...]
    key: str | None = None  # tunnels.key as OVS spells it: a number, "flow", or None (no key)

    @property
    def key_mode(self) -> str:
        """The key mode in words, for the text reports."""
        if self.key is None:
            return "GRE without key"
        return "GRE key flow (set per packet by the controller)" if self.key == "flow" else f"GRE key {self.key}"

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `key` is the intent's `tunnels.key` (a number, "flow", or null)."""
        return {
            "bridge": self.bridge,
            "datapath": self.datapath,
            "key": int(self.key) if self.key is not None and self.key.isdigit() else self.key,
            "bfd": self.bfd,
            "tunnels": [t.as_json() for t in self.tunnels],
        }


def overlay_status(intent: Intent, state: OverlayState) -> OverlayStatus | None:
    """Join what was read with the intent; None on a switch without an overlay (a spine)."""
    overlay = intent.overlay
    if overlay is None:
        return None
    peers = select_peers(intent, state.kernel_routes)
    rows = {row.remote: row for row in state.tunnels if row.remote is not None}
    routes = {r.prefix.network_address: r for r in state.ovs_routes or () if r.user and r.prefix.prefixlen == 32}
    bridges = uplink_bridges(intent)
    tunnels = []
    for peer in sorted(set(peers.usable) | set(peers.dropped) | set(rows)):
        row = rows.get(peer)
        route = routes.get(peer)
        tunnels.append(
            TunnelStatus(
                peer=peer,
                expected=peer in peers.usable,
                port=row.name if row is not None else None,
                ofport=row.ofport if row is not None else None,
                error=row.error if row is not None else None,
                key=row.key if row is not None else None,
                bfd=state.bfd.get(row.name) if row is not None and overlay.tunnels.bfd else None,
                ovs_route=route if route is not None and route.device in bridges else None,
                underlay=longest_match(state.kernel_routes, peer),
                reason=None if peer in peers.usable else peers.dropped.get(peer, _NOT_A_PEER),
            )
        )
    key = None if overlay.tunnels.key is None else str(overlay.tunnels.key)
    return OverlayStatus(overlay.bridge, overlay.datapath, overlay.tunnels.bfd, tuple(tunnels), key)


@dataclass(frozen=True)
class OverlayProblem(Finding):
    """One thing wrong with the overlay; `subject` names the tunnel and its peer (as health's Degraded)."""

    kind: ProblemKind


def judge_overlay(st: OverlayStatus) -> list[OverlayProblem]:
    """Every missing or broken tunnel, one item each."""
    problems = []
    for t in st.tunnels:
        problem = _tunnel_problem(st, t)
        if problem is not None:
            problems.append(OverlayProblem("tunnel", f"tunnel {t.port or '-'} to {t.peer}", problem))
    return problems


def _tunnel_problem(st: OverlayStatus, t: TunnelStatus) -> str | None:
    if not t.expected:
        return f"tor-agent keeps no tunnel to it ({t.reason}) but the port exists" if t.port else None
    if t.port is None:
        return "missing: the peer has an underlay route but no tunnel port"
    if t.ofport is None or t.ofport <= 0 or t.error:
        return f"not set up by ovs-vswitchd (ofport {t.ofport}{f', {t.error}' if t.error else ''})"
    if t.key != st.key:
        # Peers with the intent's key drop what this tunnel sends, and it drops what they send.
        return f"GRE key {t.key or 'none'}, the intent wants {st.key or 'none'} (tunnels.key)"
    if st.bfd and t.bfd != "up":
        return f"BFD {t.bfd or 'no session'}"
    if st.datapath == "netdev":
        return _route_problem(t)
    return None


def _route_problem(t: TunnelStatus) -> str | None:
    if t.ovs_route is None:
        return "no OVS route over an uplink bridge (OVS cannot encapsulate to it)"
    live = t.underlay.live_nexthops() if t.underlay is not None else ()
    if not any(nh.ifname == t.ovs_route.device and nh.gateway == t.ovs_route.gateway for nh in live):
        return f"OVS route {t.ovs_route} uses a nexthop the kernel does not have (live: {_hops(t.underlay)})"
    return None


def check_overlay(
    intent: Intent, read: Callable[[], OverlayState]
) -> tuple[OverlayStatus | None, list[OverlayProblem]]:
    """Read and judge: (None, []) without an overlay; a `read` problem when the state cannot be read."""
    if intent.overlay is None:
        return None, []
    try:
        st = overlay_status(intent, read())
    except TorAgentError as e:
        return None, [OverlayProblem("read", intent.overlay.bridge, f"cannot read the overlay: {e}")]
    assert st is not None
    return st, judge_overlay(st)


# --- text -------------------------------------------------------------------------------------------------------


def overlay_lines(st: OverlayStatus, problems: Sequence[OverlayProblem]) -> list[str]:
    """The status report's overlay section: one line per peer."""
    if not st.tunnels:
        return [f"overlay {st.bridge} ({st.datapath}, {st.key_mode}): no tunnel peers"]
    lines = [f"overlay {st.bridge} ({st.datapath}, {st.key_mode}), tunnels (port, ofport, BFD, route):"]
    for t in st.tunnels:
        if not t.expected and t.port is None:
            lines.append(f"  {t.peer}: no tunnel ({t.reason})")
            continue
        bfd = f"BFD {t.bfd or '-'}" if st.bfd else "BFD off"
        via = f"OVS route {t.ovs_route}" if st.datapath == "netdev" else f"underlay {_kernel_route(t.underlay)}"
        lines.append(f"  {t.peer}: {t.port or 'no port'} ofport {t.ofport} {bfd}, {via if t.port else ''}".rstrip(", "))
    lines += [f"degraded: {p}" for p in problems]
    return lines


def verify_line(hostname: str, st: OverlayStatus, problems: Sequence[OverlayProblem]) -> list[str]:
    """The verify report's overlay lines."""
    if not problems:
        up = sum(t.expected for t in st.tunnels)
        return [f"{hostname}: overlay healthy: {up} tunnel(s) up, {st.key_mode}"]
    return [f"{hostname}: overlay degraded ({len(problems)}):", *(f"  {p}" for p in problems)]


def _kernel_route(route: KernelRoute | None) -> str | None:
    if route is None:
        return None
    return f"{route.prefix} via {_hops(route)}"


def _hops(route: KernelRoute | None) -> str:
    live = route.live_nexthops() if route is not None else ()
    return ", ".join(f"{nh.gateway} dev {nh.ifname}" if nh.gateway else f"dev {nh.ifname}" for nh in live) or "none"

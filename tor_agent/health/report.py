"""Text for operators: `tor-agent status` and `tor-agent verify` output. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from tor_agent.health.frr_state import BfdPeer
from tor_agent.health.underlay import Degraded, LayerRoute, UnderlayStatus, UplinkStatus


def status_lines(st: UnderlayStatus, problems: Sequence[Degraded]) -> list[str]:
    """The status report: a headline, uplinks, BFD sessions, the route to every VTEP per layer."""
    lines = [_headline(st, problems), "uplinks (OSPF neighbour, BFD):"]
    lines += [f"  {_uplink(u)}" for u in st.uplinks]
    lines.append("BFD sessions:" if st.bfd_peers else "BFD sessions: none")
    lines += [f"  {_bfd(p)}" for p in sorted(st.bfd_peers, key=lambda p: (p.ifname or "", p.peer))]
    kind = "loopbacks" if st.role == "spine" else "VTEPs"
    lines.append(f"routes to {kind} (nexthops per layer):" if st.vteps else f"routes to {kind}: none known")
    for v in st.vteps:
        lines.append(f"  {v.address}  ECMP width {v.width}")
        layers = (("ospf", v.ospf), ("zebra", v.zebra), ("kernel", v.kernel))
        lines += [f"    {name:<6} {_route(route)}" for name, route in layers]
    if st.vteps and st.role == "leaf":
        lines.append("  (GRE has no L4 ports: each VTEP pair uses one of these paths, chosen by hash)")
    lines += [f"note: {n}" for n in st.notes()]
    lines += [f"degraded: {p}" for p in problems]
    return lines


def verify_lines(hostname: str, problems: Sequence[Degraded], st: UnderlayStatus | None) -> list[str]:
    """The verify report: one line when healthy, else a headline and one line per degraded item."""
    if not problems and st is not None:
        widths = sorted({v.width for v in st.vteps})
        full = sum(u.healthy for u in st.uplinks)
        spread = f", ECMP width {'/'.join(map(str, widths))}" if widths else ""
        kind = "loopback" if st.role == "spine" else "VTEP"
        counts = f"{full}/{len(st.uplinks)} uplinks Full, {len(st.vteps)} {kind} route(s)"
        return [f"{hostname}: underlay healthy: {counts}{spread}", *(f"  note: {n}" for n in st.notes())]
    notes = [f"  note: {n}" for n in st.notes()] if st is not None else []
    return [f"{hostname}: underlay degraded ({len(problems)}):", *(f"  {p}" for p in problems), *notes]


def _headline(st: UnderlayStatus, problems: Sequence[Degraded]) -> str:
    verdict = "healthy" if not problems else f"degraded ({len(problems)})"
    return f"{st.hostname} ({st.role}): underlay {verdict}"


def _uplink(u: UplinkStatus) -> str:
    name = u.uplink.name if u.interface == u.uplink.name else f"{u.uplink.name} ({u.interface})"
    n = u.neighbor
    if n is None:
        neighbour = "no neighbour"
    else:
        up = f" up {_duration(n.uptime_ms / 1000)}" if n.uptime_ms is not None and n.full else ""
        neighbour = f"{n.router_id} via {n.address} {n.state}{up}{' drained' if u.drained else ''}"
    bfd = f"BFD {u.bfd.status}" if u.bfd is not None else "BFD -"
    return f"{name:<20} {neighbour:<44} {bfd}"


def _bfd(p: BfdPeer) -> str:
    up = f" {_duration(p.uptime_s)}" if p.uptime_s is not None and p.up else ""
    diag = f" (diagnostic: {p.diagnostic})" if p.diagnostic and p.diagnostic != "ok" else ""
    return f"{p.peer} on {p.ifname or '-'}: {p.status}{up}{diag}"


def _route(route: LayerRoute | None) -> str:
    if route is None:
        return "no route"
    hops = ", ".join(map(str, route.nexthops)) or "no live nexthop"
    protocol = f" ({route.protocol})" if route.protocol and route.protocol != "ospf" else ""
    return f"{route.prefix}{protocol}: {hops}"


def _duration(seconds: float) -> str:
    """3.4s, 5m12s, 2h03m, 3d04h."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"

"""What `status` and `verify` read, through the drivers: FRR's and the kernel's underlay, OVSDB's tunnels with
ovs-vswitchd's BFD sessions and route table, and the kernel's interfaces. Reads only."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address

from tor_agent.config.schema import Intent
from tor_agent.frr.vty import Vty, VtyShow
from tor_agent.frr.vtysh import Vtysh
from tor_agent.health.overlay import OverlayState, TunnelRow
from tor_agent.health.parts import MissingPart, missing_parts
from tor_agent.health.underlay import UnderlayState, bfd_enabled, collect
from tor_agent.model.links import desired_links
from tor_agent.model.peers import uplink_bridges
from tor_agent.model.routes import KernelRoute
from tor_agent.net import interface_names, kernel_routes
from tor_agent.ovs.routes import OvsRouteTable
from tor_agent.ovs.state import OvsSnapshot

SHOW_TIMEOUT_S = 10.0  # a show command answers in ~20 ms; a stuck daemon must not hang a periodic verify


def read_underlay(
    intent: Intent, timeout_s: float = SHOW_TIMEOUT_S, routes: Callable[[], tuple[KernelRoute, ...]] = kernel_routes
) -> UnderlayState:
    """FRR's and the kernel's view of this switch's underlay (this network namespace, FRR's default sockets):
    FRR's daemons asked over their vty sockets (no vtysh process; vtysh when a socket cannot answer), the
    kernel's routes from `routes` (a dump by default)."""
    frr = VtyShow(Vty(timeout_s=timeout_s), fallback=Vtysh(timeout_s=timeout_s))
    return collect(frr, routes, bfd=bfd_enabled(intent))


def read_overlay(intent: Intent, remote: str | None = None) -> OverlayState:
    """The overlay as OVSDB, ovs-vswitchd and the kernel have it now."""
    from tor_agent.ovs.connection import DEFAULT_REMOTE, OvsConnection

    kernel = kernel_routes()
    with OvsConnection.open(remote or DEFAULT_REMOTE) as conn:
        snap = conn.snapshot(full=True)
    table = OvsRouteTable()
    bfd = table.bfd_states() if intent.overlay is not None and intent.overlay.tunnels.bfd else {}
    routes = table.show() if uplink_bridges(intent) else None
    return OverlayState(tunnel_rows(snap), bfd, routes, kernel)


def read_parts(intent: Intent) -> list[MissingPart]:
    """The interfaces the intent names that this namespace does not have."""
    return missing_parts(desired_links(intent), interface_names())


def tunnel_rows(snap: OvsSnapshot) -> tuple[TunnelRow, ...]:
    """Every GRE interface of `snap`, owned or not."""
    rows = []
    for name, iface in sorted(snap.interfaces.items()):
        if iface.spec.type == "gre":
            remote = dict(iface.spec.options).get("remote_ip")
            rows.append(TunnelRow(name, _address(remote), iface.owned, iface.ofport, iface.error))
    return tuple(rows)


def _address(text: str | None) -> IPv4Address | None:
    try:
        return IPv4Address(text) if text else None
    except ValueError:
        return None

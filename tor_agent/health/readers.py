"""What `status`, `verify` and `drain` read, through the drivers: FRR's and the kernel's underlay, the area's
link-state database, OVSDB's tunnels with ovs-vswitchd's BFD sessions and route table, the kernel's
interfaces, and lldpd's neighbours (through `lldpcli`). Reads only."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from tor_agent.config.schema import Intent
from tor_agent.frr.vty import Vty, VtyShow
from tor_agent.frr.vtysh import Vtysh
from tor_agent.health.fabric_live import RouterLinks, parse_router_links
from tor_agent.health.lsdb import ROUTER_LSAS, Lsdb, PairLoss, drain_losses, parse_lsdb
from tor_agent.health.neighbours import LLDP_NEIGHBOURS, LldpNeighbour, LldpUnavailable, parse_lldp
from tor_agent.health.overlay import OverlayState, TunnelRow
from tor_agent.health.parts import MissingPart, missing_parts
from tor_agent.health.underlay import UnderlayState, bfd_enabled, collect
from tor_agent.model.links import desired_links
from tor_agent.model.peers import uplink_bridges
from tor_agent.model.routes import KernelRoute
from tor_agent.net import interface_names, kernel_routes
from tor_agent.ovs.routes import OvsRouteTable
from tor_agent.ovs.state import OvsSnapshot

if TYPE_CHECKING:
    from tor_agent.ovs.connection import OvsConnection

SHOW_TIMEOUT_S = 10.0  # a show command answers in ~20 ms; a stuck daemon must not hang a periodic verify
LLDP_TIMEOUT_S = 5.0  # lldpcli answers in a few ms


def read_underlay(
    intent: Intent, timeout_s: float = SHOW_TIMEOUT_S, routes: Callable[[], tuple[KernelRoute, ...]] = kernel_routes
) -> UnderlayState:
    """FRR's and the kernel's view of this switch's underlay (this network namespace, FRR's default sockets):
    FRR's daemons asked over their vty sockets (no vtysh process; vtysh when a socket cannot answer), the
    kernel's routes from `routes` (a dump by default)."""
    frr = VtyShow(Vty(timeout_s=timeout_s), fallback=Vtysh(timeout_s=timeout_s))
    return collect(frr, routes, bfd=bfd_enabled(intent))


def read_overlay(intent: Intent, conn: OvsConnection) -> OverlayState:
    """The overlay as OVSDB (through `conn`), ovs-vswitchd and the kernel have it now."""
    kernel = kernel_routes()
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
            options = dict(iface.spec.options)
            remote = _address(options.get("remote_ip"))
            rows.append(TunnelRow(name, remote, iface.owned, iface.ofport, iface.error, options.get("key")))
    return tuple(rows)


def _address(text: str | None) -> IPv4Address | None:
    try:
        return IPv4Address(text) if text else None
    except ValueError:
        return None


def read_lsdb(timeout_s: float = SHOW_TIMEOUT_S) -> Lsdb:
    """The area's router LSAs, as this switch's ospfd holds them."""
    return parse_lsdb(Vtysh(timeout_s=timeout_s).show_json(ROUTER_LSAS))


def drain_check(intent: Intent, min_paths: int = 1) -> list[PairLoss]:
    """The router pairs that draining this switch would leave with fewer than `min_paths` paths."""
    return drain_losses(read_lsdb(), intent.node.router_id, min_paths)


def read_router_links(timeout_s: float = SHOW_TIMEOUT_S) -> dict[IPv4Address, RouterLinks]:
    """Every router LSA of the area with its links, addresses and stub networks, as this switch's ospfd holds them."""
    return parse_router_links(Vtysh(timeout_s=timeout_s).show_json(ROUTER_LSAS))


def read_lldp(timeout_s: float = LLDP_TIMEOUT_S) -> tuple[LldpNeighbour, ...]:
    """lldpd's neighbours on every interface; LldpUnavailable saying why when lldpd cannot be asked."""
    command = " ".join(LLDP_NEIGHBOURS)
    try:
        done = subprocess.run(list(LLDP_NEIGHBOURS), capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError as e:
        raise LldpUnavailable("lldpcli is not installed (apt install lldpd)") from e
    except subprocess.TimeoutExpired as e:
        raise LldpUnavailable(f"`{command}` did not answer within {timeout_s:g} s") from e
    except OSError as e:
        raise LldpUnavailable(f"`{command}`: {e}") from e
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split())[:300] or f"exit {done.returncode}"
        raise LldpUnavailable(f"lldpd does not answer (is it running?): {said}")
    try:
        doc = json.loads(done.stdout)
    except ValueError as e:
        raise LldpUnavailable(f"`{command}`: output is not JSON: {e}") from e
    return parse_lldp(doc)

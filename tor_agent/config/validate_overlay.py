"""Rules across the fields of the leaf-only sections: overlay (bridge, ports, tunnels) and controllers."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path

from tor_agent.config.files import FileProblem, read_file
from tor_agent.config.pem import pem_problem
from tor_agent.config.quote import one_line
from tor_agent.config.reader import Reader, join, resolve, secret_file_mode
from tor_agent.config.schema import Controllers, Node, Overlay, Ssl, Target, Tunnels, Underlay
from tor_agent.config.values import IFNAME_MAX

# tor-agent names the tunnel to a peer gre- + its address in 8 hex digits (model.overlay.tunnel_port_name).
_TUNNEL_PORT = re.compile(r"gre-[0-9a-f]{8}", re.ASCII)

# Bytes a GRE-encapsulated tenant frame adds to the tenant's IP MTU on an uplink:
# outer IPv4 header 20 + GRE header 4 (+ 4 with a key) + the tenant's Ethernet header 14.
GRE_OVERHEAD = 20 + 4 + 14
GRE_KEY_OVERHEAD = 4


def gre_overhead(keyed: bool) -> int:
    """Encapsulation overhead of one tenant frame in bytes."""
    return GRE_OVERHEAD + (GRE_KEY_OVERHEAD if keyed else 0)


def derived_dpid(router_id: ipaddress.IPv4Address) -> str:
    """The DPID of a leaf whose intent names none: 8 zeros, then the router ID in 8 hex digits.

    Router IDs are unique in an OSPF domain, so these DPIDs are unique across the fabric."""
    return f"{int(router_id):016x}"


def own_addresses(node: Node | None, underlay: Underlay | None) -> dict[ipaddress.IPv4Address, str]:
    """This switch's own addresses, each with the field that gives it."""
    own: dict[ipaddress.IPv4Address, str] = {}
    if underlay is not None:
        for i, u in enumerate(underlay.uplinks):
            if u.address is not None:
                own[u.address.ip] = f"underlay.uplinks[{i}].address"
    if node is not None:
        own[node.loopback.ip] = "node.loopback, this node's own VTEP"
    return own


# --- overlay ----------------------------------------------------------------------------------------


def check_overlay(r: Reader, node: Node | None, underlay: Underlay | None) -> Overlay | None:
    """The overlay section cross-checked against the node and its uplinks, its DPID filled in; None if absent
    or invalid."""
    overlay: Overlay | None = r.sections.get("overlay")
    tunnels: Tunnels | None = overlay.tunnels if overlay is not None else r.sections.get("overlay.tunnels")
    if tunnels is not None:
        _peers_not_own(tunnels, own_addresses(node, underlay), r)
        if underlay is not None:
            _mtu_fits(tunnels, underlay, r)
    if overlay is None:
        return None
    if underlay is not None:
        _ports_apart(overlay, underlay, r)
    if overlay.dpid or node is None:
        return overlay
    return dataclasses.replace(overlay, dpid=derived_dpid(node.router_id))


def _peers_not_own(tunnels: Tunnels, own: dict[ipaddress.IPv4Address, str], r: Reader) -> None:
    for i, peer in enumerate(tunnels.peers):
        r.require(
            peer not in own, f"overlay.tunnels.peers[{i}]", f"{peer} is this switch's own address ({own.get(peer)})"
        )


def _mtu_fits(tunnels: Tunnels, underlay: Underlay, r: Reader) -> None:
    keyed = tunnels.key is not None  # "flow" carries a key in every packet too
    need = tunnels.tenant_mtu + gre_overhead(keyed)
    for i, u in enumerate(underlay.uplinks):
        r.require(
            u.mtu >= need,
            "overlay.tunnels.tenant_mtu",
            f"{tunnels.tenant_mtu} + {gre_overhead(keyed)} bytes of GRE/IP/Ethernet overhead = {need} does not fit "
            f"underlay.uplinks[{i}] ({u.name}, mtu {u.mtu}); raise that mtu or lower tenant_mtu",
        )


def _ports_apart(overlay: Overlay, underlay: Underlay, r: Reader) -> None:
    """The bridge, access ports, uplinks and uplink bridges must all be different interfaces, none named like
    a tunnel port."""
    uplinks = {u.name for u in underlay.uplinks}
    for i, port in enumerate(overlay.access_ports):
        path = f"overlay.access_ports[{i}]"
        r.require(port not in uplinks, path, f"{port!r} is an uplink (an access port faces hosts)")
        r.require(port != overlay.bridge, path, f"{port!r} is the bridge itself")
        not_tunnel_named(port, path, r)
    r.require(overlay.bridge not in uplinks, "overlay.bridge", f"{overlay.bridge!r} is an uplink name")
    not_tunnel_named(overlay.bridge, "overlay.bridge", r)
    if overlay.datapath == "netdev":
        _uplink_bridges(overlay, underlay, r)
    else:
        for i, u in enumerate(underlay.uplinks):
            r.require(u.bridge is None, f"underlay.uplinks[{i}].bridge", "is only used with overlay.datapath: netdev")


def not_tunnel_named(name: str, path: str, r: Reader) -> None:
    """Refuse an OVS port named like the tunnel port tor-agent makes for a peer (gre- + 8 hex digits)."""
    r.require(
        not _TUNNEL_PORT.fullmatch(name),
        path,
        f"{name!r} is named like a tunnel port: tor-agent names the tunnel to each peer gre- and the peer's "
        "address in 8 hex digits (rename this interface)",
    )


def _uplink_bridges(overlay: Overlay, underlay: Underlay, r: Reader) -> None:
    seen: set[str] = {overlay.bridge, *overlay.access_ports} | {u.name for u in underlay.uplinks}
    for i, u in enumerate(underlay.uplinks):
        name, path = u.bridge_name, f"underlay.uplinks[{i}]"
        not_tunnel_named(u.name, join(path, "name"), r)
        if not r.require(
            len(name) <= IFNAME_MAX,
            path,
            f"uplink bridge name {name!r} is too long: set {path}.bridge (1..15 characters)",
        ):
            continue
        r.require(name not in seen, join(path, "bridge"), f"uplink bridge {name!r} clashes with another interface name")
        seen.add(name)
        if u.bridge is not None:
            not_tunnel_named(u.bridge, join(path, "bridge"), r)


# --- controllers ------------------------------------------------------------------------------------


def check_controllers(r: Reader, base_dir: Path, node: Node | None, underlay: Underlay | None) -> Controllers | None:
    """The controllers section: targets are not this switch, TLS settings come with PEM files of the right
    kind and no plaintext target unless allowed; None if absent or invalid."""
    controllers: Controllers | None = r.sections.get("controllers")
    ssl = _ssl(r.sections.get("controllers.ssl"), base_dir, r)
    if controllers is None:
        return None
    own = own_addresses(node, underlay)
    for i, t in enumerate(controllers.targets):
        address = ipaddress.ip_address(t.host)
        field = own.get(address) if isinstance(address, ipaddress.IPv4Address) else None
        r.require(field is None, f"controllers.targets[{i}]", f"{t}: {t.host} is this switch's own address ({field})")
    if any(t.scheme == "ssl" for t in controllers.targets):
        r.require(
            controllers.ssl is not None,
            "controllers.ssl",
            "is required by the ssl: targets (private_key, certificate, ca_cert)",
        )
    if controllers.ssl is not None and not controllers.allow_plaintext:
        _no_plaintext(controllers.targets, r)
    return dataclasses.replace(controllers, ssl=ssl)


def _no_plaintext(targets: tuple[Target, ...], r: Reader) -> None:
    """With TLS settings, a tcp: target is most likely a mistake that would send OpenFlow in the clear."""
    for i, t in enumerate(targets):
        r.require(
            t.scheme != "tcp",
            f"controllers.targets[{i}]",
            f"{t} is plaintext although controllers.ssl is set (use ssl:, or set controllers.allow_plaintext: true)",
        )


def _ssl(ssl: Ssl | None, base_dir: Path, r: Reader) -> Ssl | None:
    """The ssl section with its paths resolved, once each file is PEM of its kind."""
    if ssl is None:
        return None
    paths = {}
    for key in ("private_key", "certificate", "ca_cert"):
        path, where = resolve(base_dir, getattr(ssl, key)), f"controllers.ssl.{key}"
        paths[key] = path
        try:
            content = read_file(path)
        except FileProblem as e:
            r.require(False, where, f"cannot read {one_line(path)}: {e}")
            continue
        problem = pem_problem(content.data, key)
        r.require(problem is None, where, f"{one_line(path)} {problem}")
        if key == "private_key":
            secret_file_mode(content.mode, path, where, r)
    return Ssl(**paths)

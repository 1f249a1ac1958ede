"""Validation of the leaf-only sections: overlay (bridge, ports, tunnels) and controllers."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

from tor_agent.config import limits as L
from tor_agent.config.files import FileProblem, read_file
from tor_agent.config.pem import pem_problem
from tor_agent.config.quote import one_line, shown
from tor_agent.config.reader import Reader, ifname, integer_hint, join, resolve, secret_file_mode, unicast_problem
from tor_agent.config.schema import Controllers, Discover, Node, Overlay, Ssl, Target, Tunnels, Underlay
from tor_agent.model.underlay import uplink_bridge_name

_DPID = re.compile(r"[0-9a-f]{16}", re.ASCII)
_TARGET = re.compile(r"(?P<scheme>[a-z]+):(?P<host>\[[^\]]+\]|[^:\[\]]+)(:(?P<port>[^:]*))?")
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
# tor-agent names the tunnel to a peer gre- + its address in 8 hex digits (model.overlay.tunnel_port_name).
_TUNNEL_PORT = re.compile(r"gre-[0-9a-f]{8}", re.ASCII)
_OVERLAY_KEYS = ("bridge", "datapath", "dpid", "protocols", "fail_mode", "access_ports", "tunnels")


def build_overlay(raw: Any, node: Node | None, underlay: Underlay | None, r: Reader) -> Overlay | None:
    """The `overlay` section, cross-checked against the node and its uplinks."""
    p = "overlay"
    m = r.mapping(raw, p, _OVERLAY_KEYS, ("bridge",))
    if m is None:
        return None
    n = len(r.problems)
    bridge = ifname(m["bridge"], "overlay.bridge", r) if "bridge" in m else None
    datapath = r.string(m, p, "datapath", default="system", choices=("system", "netdev"))
    dpid = _dpid(m["dpid"], r) if "dpid" in m else (derived_dpid(node.router_id) if node is not None else None)
    protocols = _protocols(m, r)
    fail_mode = r.string(m, p, "fail_mode", default="secure", choices=("secure", "standalone"))
    access_ports = _names(m, p, "access_ports", r)
    tunnels = _tunnels(m.get("tunnels", {}), node, underlay, r)
    if len(r.problems) > n or None in (bridge, datapath, dpid, protocols, fail_mode, access_ports, tunnels):
        return None
    overlay = Overlay(bridge, datapath, dpid, protocols, fail_mode, access_ports, tunnels)  # type: ignore[arg-type]
    if underlay is not None:
        _ports_apart(overlay, underlay, r)
    return overlay if len(r.problems) == n else None


def derived_dpid(router_id: ipaddress.IPv4Address) -> str:
    """The DPID of a leaf whose intent names none: 8 zeros, then the router ID in 8 hex digits.

    Router IDs are unique in an OSPF domain, so these DPIDs are unique across the fabric."""
    return f"{int(router_id):016x}"


def _dpid(value: Any, r: Reader) -> str | None:
    ok = r.require(
        isinstance(value, str) and bool(_DPID.fullmatch(value.lower())) and int(value, 16) != 0,
        "overlay.dpid",
        f"{shown(value)} is not a datapath ID (allowed: 16 hex digits, not all zero, quoted, "
        'e.g. "00000000000000a1"; leave it out to derive it from node.router_id)',
    )
    return str(value).lower() if ok else None


def _protocols(m: dict[str, Any], r: Reader) -> tuple[str, ...] | None:
    items = r.items(m, "overlay", "protocols") if "protocols" in m else [("overlay.protocols[0]", "OpenFlow13")]
    if items is None:
        return None
    r.require(len(items) > 0, "overlay.protocols", "needs at least one OpenFlow version")
    found: list[str] = []
    for path, value in items:
        if r.require(
            value in L.OPENFLOW_VERSIONS,
            path,
            f"{shown(value)} is not supported (allowed: {' | '.join(L.OPENFLOW_VERSIONS)})",
        ):
            r.require(value not in found, path, f"{value} is listed twice")
            found.append(value)
    return tuple(found)


def _names(m: dict[str, Any], p: str, key: str, r: Reader) -> tuple[str, ...] | None:
    items = r.items(m, p, key)
    if items is None:
        return None
    names: dict[str, None] = {}
    for path, value in items:
        name = ifname(value, path, r)
        if name is not None and r.require(name not in names, path, f"{name!r} is listed twice"):
            names[name] = None
    return tuple(names)


def _ports_apart(overlay: Overlay, underlay: Underlay, r: Reader) -> None:
    """The bridge, access ports, uplinks and uplink bridges must all be different interfaces."""
    uplinks = {u.name for u in underlay.uplinks}
    for i, port in enumerate(overlay.access_ports):
        r.require(
            port not in uplinks,
            f"overlay.access_ports[{i}]",
            f"{port!r} is an uplink (an access port faces hosts)",
        )
        r.require(port != overlay.bridge, f"overlay.access_ports[{i}]", f"{port!r} is the bridge itself")
    r.require(overlay.bridge not in uplinks, "overlay.bridge", f"{overlay.bridge!r} is an uplink name")
    not_tunnel_named(overlay.bridge, "overlay.bridge", r)
    for i, port in enumerate(overlay.access_ports):
        not_tunnel_named(port, f"overlay.access_ports[{i}]", r)
    if overlay.datapath == "netdev":
        _uplink_bridges(overlay, underlay, r)
    else:
        for i, u in enumerate(underlay.uplinks):
            r.require(
                u.bridge is None,
                f"underlay.uplinks[{i}].bridge",
                "is only used with overlay.datapath: netdev",
            )


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
        name, path = uplink_bridge_name(u), f"underlay.uplinks[{i}]"
        if not r.require(
            len(name) <= L.IFNAME_MAX,
            path,
            f"uplink bridge name {name!r} is too long: set {path}.bridge (1..15 characters)",
        ):
            continue
        r.require(
            name not in seen,
            join(path, "bridge"),
            f"uplink bridge {name!r} clashes with another interface name",
        )
        seen.add(name)
        not_tunnel_named(u.name, join(path, "name"), r)
        if u.bridge is not None:
            not_tunnel_named(u.bridge, join(path, "bridge"), r)


def _tunnels(raw: Any, node: Node | None, underlay: Underlay | None, r: Reader) -> Tunnels | None:
    p = "overlay.tunnels"
    m = r.mapping(raw, p, ("type", "key", "tenant_mtu", "bfd", "peers", "discover", "hold_down_s"))
    if m is None:
        return None
    n = len(r.problems)
    r.string(m, p, "type", default="gre", choices=("gre",))
    key = _key(m, r)
    tenant_mtu = r.integer(m, p, "tenant_mtu", *L.MTU, default=1500)
    bfd = r.boolean(m, p, "bfd", default=False)
    hold_down_s = r.integer(m, p, "hold_down_s", *L.TUNNEL_HOLD_DOWN_S, default=10)
    peers = _peers(m, own_addresses(node, underlay), r)
    discover = _discover(m["discover"], r) if "discover" in m else None
    if len(r.problems) > n or peers is None:
        return None
    if underlay is not None:
        _mtu_fits(tenant_mtu, key is not None, underlay, r)  # "flow" carries a key in every packet too
    return Tunnels("gre", key, tenant_mtu, bfd, peers, discover, hold_down_s)


def _key(m: dict[str, Any], r: Reader) -> int | Literal["flow"] | None:
    value = m.get("key")
    if "key" not in m or (isinstance(value, int) and not isinstance(value, bool)):
        return r.integer(m, "overlay.tunnels", "key", *L.GRE_KEY, default=None)  # type: ignore[no-any-return]
    if value == "flow":
        return "flow"
    lo, hi = L.GRE_KEY
    r.require(
        False,
        "overlay.tunnels.key",
        f"{shown(value)} is not a tunnel key (allowed: {lo}..{hi}, or flow: the controller sets it per packet)"
        f"{integer_hint(value)}",
    )
    return None


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


def _peers(
    m: dict[str, Any], own: dict[ipaddress.IPv4Address, str], r: Reader
) -> tuple[ipaddress.IPv4Address, ...] | None:
    items = r.items(m, "overlay.tunnels", "peers")
    if items is None:
        return None
    peers: dict[ipaddress.IPv4Address, None] = {}
    for path, value in items:
        peer = r.ipv4(value, path)
        if peer is None:
            continue
        if peer in own:
            r.require(False, path, f"{peer} is this switch's own address ({own[peer]})")
        elif r.require(peer not in peers, path, f"{peer} is listed twice"):
            peers[peer] = None
    return tuple(peers)


def _discover(raw: Any, r: Reader) -> Discover | None:
    p = "overlay.tunnels.discover"
    m = r.mapping(raw, p, ("ospf_prefix",), ("ospf_prefix",))
    if m is None or "ospf_prefix" not in m:
        return None
    prefix = r.parsed(
        m["ospf_prefix"],
        join(p, "ospf_prefix"),
        lambda s: ipaddress.IPv4Network(s, strict=True),
        "a prefix such as 198.18.0.0/24",
    )
    return Discover(prefix) if prefix is not None else None


def _mtu_fits(tenant_mtu: int, keyed: bool, underlay: Underlay, r: Reader) -> None:
    need = tenant_mtu + L.gre_overhead(keyed)
    for i, u in enumerate(underlay.uplinks):
        r.require(
            u.mtu >= need,
            "overlay.tunnels.tenant_mtu",
            f"{tenant_mtu} + {L.gre_overhead(keyed)} bytes of GRE/IP/Ethernet overhead = {need} does not fit "
            f"underlay.uplinks[{i}] ({u.name}, mtu {u.mtu}); raise that mtu or lower tenant_mtu",
        )


# --- controllers ------------------------------------------------------------------------------------

_CONTROLLER_KEYS = (
    "targets",
    "inactivity_probe_ms",
    "max_backoff_ms",
    "connection_mode",
    "ssl",
    "alarm_grace_s",
    "probe_interval_ms",
    "allow_plaintext",
)


def build_controllers(
    raw: Any, base_dir: Path, node: Node | None, underlay: Underlay | None, r: Reader
) -> Controllers | None:
    """The `controllers` section: targets parse, ssl: targets come with their files."""
    p = "controllers"
    m = r.mapping(raw, p, _CONTROLLER_KEYS, ("targets",))
    if m is None:
        return None
    n = len(r.problems)
    targets = _targets(m, own_addresses(node, underlay), r)
    probe = _probe(m, r)
    backoff = r.integer(m, p, "max_backoff_ms", *L.MAX_BACKOFF_MS, default=8000)
    mode = r.string(m, p, "connection_mode", default="out-of-band", choices=("out-of-band", "in-band"))
    ssl = _ssl(m["ssl"], base_dir, r) if "ssl" in m else None
    grace = r.integer(m, p, "alarm_grace_s", *L.CONTROLLER_ALARM_GRACE_S, default=10)
    probe_interval = r.integer(m, p, "probe_interval_ms", *L.CONTROLLER_PROBE_INTERVAL_MS, default=500)
    plaintext = r.boolean(m, p, "allow_plaintext", default=False)
    if targets and any(t.scheme == "ssl" for t in targets):
        r.require(
            "ssl" in m,
            "controllers.ssl",
            "is required by the ssl: targets (private_key, certificate, ca_cert)",
        )
    if targets and "ssl" in m and not plaintext:
        _no_plaintext(targets, r)
    if len(r.problems) > n or targets is None or probe is None:  # None only after a recorded problem
        return None
    return Controllers(
        targets,
        inactivity_probe_ms=probe,
        max_backoff_ms=backoff,
        connection_mode=mode,
        ssl=ssl,
        alarm_grace_s=grace,
        probe_interval_ms=probe_interval,
        allow_plaintext=bool(plaintext),
    )


def _no_plaintext(targets: tuple[Target, ...], r: Reader) -> None:
    """With TLS settings, a tcp: target is most likely a mistake that would send OpenFlow in the clear."""
    for i, t in enumerate(targets):
        r.require(
            t.scheme != "tcp",
            f"controllers.targets[{i}]",
            f"{t} is plaintext although controllers.ssl is set (use ssl:, or set controllers.allow_plaintext: true)",
        )


def _probe(m: dict[str, Any], r: Reader) -> int | None:
    value = m.get("inactivity_probe_ms")
    if value == 0 and not isinstance(value, bool):
        return 0  # 0 disables the probe; anything else is floored at 5 s by OVS, so refuse less
    return r.integer(m, "controllers", "inactivity_probe_ms", *L.INACTIVITY_PROBE_MS, default=5000)  # type: ignore[no-any-return]


def _targets(m: dict[str, Any], own: dict[ipaddress.IPv4Address, str], r: Reader) -> tuple[Target, ...] | None:
    items = r.items(m, "controllers", "targets")
    if items is None:
        return None
    r.require(len(items) > 0, "controllers.targets", "needs at least one target such as tcp:203.0.113.10:6653")
    targets: dict[Target, None] = {}
    for path, value in items:
        target = _target(value, path, own, r)
        if target is not None and r.require(target not in targets, path, f"{target} is listed twice"):
            targets[target] = None
    return tuple(targets)


def _target(value: Any, path: str, own: dict[ipaddress.IPv4Address, str], r: Reader) -> Target | None:
    form = "tcp:IP:PORT or ssl:IP:PORT, IPv6 in brackets, port 1..65535"
    match = _TARGET.fullmatch(value) if isinstance(value, str) else None
    if not r.require(match is not None, path, f"{shown(value)} is not a controller target ({form})"):
        return None
    assert match is not None
    scheme, host, port = match["scheme"], match["host"].strip("[]"), match["port"]
    if not r.require(
        scheme in ("tcp", "ssl"), path, f"{shown(value)}: scheme {shown(scheme)} is not supported ({form})"
    ):
        return None
    if not _host_ok(host, shown(value), path, own, r):
        return None
    if port is None:
        return Target(scheme, host, L.OPENFLOW_PORT)  # type: ignore[arg-type]
    ok = bool(_PORT.fullmatch(port)) and L.TCP_PORT[0] <= int(port) <= L.TCP_PORT[1]
    if not r.require(ok, path, f"{shown(value)}: port {shown(port)} is out of range ({form})"):
        return None
    return Target(scheme, host, int(port))  # type: ignore[arg-type]


def _host_ok(host: str, value: str, path: str, own: dict[ipaddress.IPv4Address, str], r: Reader) -> bool:
    """A unicast address, not one the intent gives this switch (127.0.0.1 or ::1: a controller on the switch)."""
    form = "tcp:IP:PORT or ssl:IP:PORT, IPv6 in brackets, port 1..65535"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return r.require(False, path, f"{value}: {shown(host)} is not an IP address ({form})")
    why = unicast_problem(address, loopback_ok=True)
    if not r.require(why is None, path, f"{value}: {address} is not a unicast address ({why})"):
        return False
    field = own.get(address) if isinstance(address, ipaddress.IPv4Address) else None
    return r.require(field is None, path, f"{value}: {address} is this switch's own address ({field})")


def _ssl(raw: Any, base_dir: Path, r: Reader) -> Ssl | None:
    p = "controllers.ssl"
    keys = ("private_key", "certificate", "ca_cert")
    m = r.mapping(raw, p, keys, keys)
    if m is None:
        return None
    n = len(r.problems)
    paths = {}
    for key in keys:
        value = r.string(m, p, key)
        if value is None:
            continue
        paths[key] = path = resolve(base_dir, value)
        try:
            content = read_file(path)
        except FileProblem as e:
            r.require(False, join(p, key), f"cannot read {one_line(path)}: {e}")
            continue
        problem = pem_problem(content.data, key)
        r.require(problem is None, join(p, key), f"{one_line(path)} {problem}")
        if key == "private_key":
            secret_file_mode(content.mode, path, join(p, key), r)
    return Ssl(**paths) if len(r.problems) == n else None

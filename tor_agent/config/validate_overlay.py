"""Validation of the leaf-only sections: overlay (bridge, ports, tunnels) and controllers."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any

from tor_agent.config import limits as L
from tor_agent.config.reader import Reader, ifname, join, resolve
from tor_agent.config.schema import Controllers, Discover, Node, Overlay, Ssl, Target, Tunnels, Underlay
from tor_agent.model.underlay import uplink_bridge_name

_DPID = re.compile(r"^[0-9a-f]{16}$")
_TARGET = re.compile(r"^(?P<scheme>[a-z]+):(?P<host>\[[^\]]+\]|[^:\[\]]+)(:(?P<port>[^:]*))?$")
_OVERLAY_KEYS = ("bridge", "datapath", "dpid", "protocols", "fail_mode", "access_ports", "tunnels")


def build_overlay(raw: Any, node: Node | None, underlay: Underlay | None, r: Reader) -> Overlay | None:
    """The `overlay` section, cross-checked against the node and its uplinks."""
    p = "overlay"
    m = r.mapping(raw, p, _OVERLAY_KEYS, ("bridge", "dpid"))
    if m is None:
        return None
    n = len(r.problems)
    bridge = ifname(m["bridge"], "overlay.bridge", r) if "bridge" in m else None
    datapath = r.string(m, p, "datapath", default="system", choices=("system", "netdev"))
    dpid = _dpid(m["dpid"], r) if "dpid" in m else None
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


def _dpid(value: Any, r: Reader) -> str | None:
    ok = r.require(
        isinstance(value, str) and bool(_DPID.match(value.lower())) and int(value, 16) != 0,
        "overlay.dpid",
        f'{value!r} is not a datapath ID (allowed: 16 hex digits, not all zero, quoted, e.g. "00000000000000a1")',
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
            f"{value!r} is not supported (allowed: {' | '.join(L.OPENFLOW_VERSIONS)})",
        ):
            r.require(value not in found, path, f"{value} is listed twice")
            found.append(value)
    return tuple(found)


def _names(m: dict[str, Any], p: str, key: str, r: Reader) -> tuple[str, ...] | None:
    items = r.items(m, p, key)
    if items is None:
        return None
    names: list[str] = []
    for path, value in items:
        name = ifname(value, path, r)
        if name is not None and r.require(name not in names, path, f"{name!r} is listed twice"):
            names.append(name)
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
    if overlay.datapath == "netdev":
        _uplink_bridges(overlay, underlay, r)
    else:
        for i, u in enumerate(underlay.uplinks):
            r.require(
                u.bridge is None,
                f"underlay.uplinks[{i}].bridge",
                "is only used with overlay.datapath: netdev",
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


def _tunnels(raw: Any, node: Node | None, underlay: Underlay | None, r: Reader) -> Tunnels | None:
    p = "overlay.tunnels"
    m = r.mapping(raw, p, ("type", "key", "tenant_mtu", "bfd", "peers", "discover", "hold_down_s"))
    if m is None:
        return None
    n = len(r.problems)
    r.string(m, p, "type", default="gre", choices=("gre",))
    key = r.integer(m, p, "key", *L.GRE_KEY, default=None)
    tenant_mtu = r.integer(m, p, "tenant_mtu", *L.MTU, default=1500)
    bfd = r.boolean(m, p, "bfd", default=False)
    hold_down_s = r.integer(m, p, "hold_down_s", *L.TUNNEL_HOLD_DOWN_S, default=10)
    peers = _peers(m, node, r)
    discover = _discover(m["discover"], r) if "discover" in m else None
    if len(r.problems) > n or peers is None:
        return None
    if underlay is not None:
        _mtu_fits(tenant_mtu, key is not None, underlay, r)
    return Tunnels("gre", key, tenant_mtu, bfd, peers, discover, hold_down_s)


def _peers(m: dict[str, Any], node: Node | None, r: Reader) -> tuple[ipaddress.IPv4Address, ...] | None:
    items = r.items(m, "overlay.tunnels", "peers")
    if items is None:
        return None
    peers: list[ipaddress.IPv4Address] = []
    for path, value in items:
        peer = r.ipv4(value, path)
        if peer is None:
            continue
        if node is not None and peer == node.loopback.ip:
            r.require(False, path, f"{peer} is this node's own VTEP (node.loopback)")
        elif r.require(peer not in peers, path, f"{peer} is listed twice"):
            peers.append(peer)
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
)


def build_controllers(raw: Any, base_dir: Path, r: Reader) -> Controllers | None:
    """The `controllers` section: targets parse, ssl: targets come with their files."""
    p = "controllers"
    m = r.mapping(raw, p, _CONTROLLER_KEYS, ("targets",))
    if m is None:
        return None
    n = len(r.problems)
    targets = _targets(m, r)
    probe = _probe(m, r)
    backoff = r.integer(m, p, "max_backoff_ms", *L.MAX_BACKOFF_MS, default=8000)
    mode = r.string(m, p, "connection_mode", default="out-of-band", choices=("out-of-band", "in-band"))
    ssl = _ssl(m["ssl"], base_dir, r) if "ssl" in m else None
    grace = r.integer(m, p, "alarm_grace_s", *L.CONTROLLER_ALARM_GRACE_S, default=10)
    probe_interval = r.integer(m, p, "probe_interval_ms", *L.CONTROLLER_PROBE_INTERVAL_MS, default=500)
    if targets and any(t.scheme == "ssl" for t in targets):
        r.require(
            "ssl" in m,
            "controllers.ssl",
            "is required by the ssl: targets (private_key, certificate, ca_cert)",
        )
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
    )


def _probe(m: dict[str, Any], r: Reader) -> int | None:
    value = m.get("inactivity_probe_ms")
    if value == 0 and not isinstance(value, bool):
        return 0  # 0 disables the probe; anything else is floored at 5 s by OVS, so refuse less
    return r.integer(m, "controllers", "inactivity_probe_ms", *L.INACTIVITY_PROBE_MS, default=5000)  # type: ignore[no-any-return]


def _targets(m: dict[str, Any], r: Reader) -> tuple[Target, ...] | None:
    items = r.items(m, "controllers", "targets")
    if items is None:
        return None
    r.require(len(items) > 0, "controllers.targets", "needs at least one target such as tcp:203.0.113.10:6653")
    targets: list[Target] = []
    for path, value in items:
        target = _target(value, path, r)
        if target is not None and r.require(target not in targets, path, f"{target} is listed twice"):
            targets.append(target)
    return tuple(targets)


def _target(value: Any, path: str, r: Reader) -> Target | None:
    form = "tcp:IP:PORT or ssl:IP:PORT, IPv6 in brackets, port 1..65535"
    match = _TARGET.match(value) if isinstance(value, str) else None
    if not r.require(match is not None, path, f"{value!r} is not a controller target ({form})"):
        return None
    assert match is not None
    scheme, host, port = match["scheme"], match["host"].strip("[]"), match["port"]
    if not r.require(scheme in ("tcp", "ssl"), path, f"{value!r}: scheme {scheme!r} is not supported ({form})"):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        r.require(False, path, f"{value!r}: {host!r} is not an IP address ({form})")
        return None
    if port is None:
        return Target(scheme, host, L.OPENFLOW_PORT)  # type: ignore[arg-type]
    ok = port.isdigit() and L.TCP_PORT[0] <= int(port) <= L.TCP_PORT[1]
    if not r.require(ok, path, f"{value!r}: port {port!r} is out of range ({form})"):
        return None
    return Target(scheme, host, int(port))  # type: ignore[arg-type]


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
        if value is not None:
            paths[key] = resolve(base_dir, value)
            r.require(
                os.access(paths[key], os.R_OK),
                join(p, key),
                f"{paths[key]} does not exist or is not readable",
            )
    return Ssl(**paths) if len(r.problems) == n else None

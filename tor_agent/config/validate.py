"""Turn a parsed intent document into a frozen `Intent`, reporting every problem at once."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from tor_agent.config import limits as L
from tor_agent.config.files import FileProblem, read_file
from tor_agent.config.quote import one_line, shown
from tor_agent.config.reader import Reader, ifname, join, resolve, secret_file_mode, unicast_problem
from tor_agent.config.schema import Bfd, Intent, Node, Ospf, OspfAuth, Underlay, Uplink
from tor_agent.config.validate_overlay import build_controllers, build_overlay

SUPPORTED_VERSIONS = (1,)
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*", re.ASCII)
HOSTNAME_MAX = 253  # a DNS name; FRR refuses 255 and more
OSPF_DEFAULT_HELLO_S = 10  # FRR's, when hello_interval_s is not set
# An OSPF MD5 key as vtysh keeps it: printable ASCII without space, and without `?` (vtysh's help key).
_OSPF_KEY = re.compile(r"[!-~]+", re.ASCII)


def build_intent(doc: Any, base_dir: Path, r: Reader) -> Intent | None:
    """Validate `doc`; relative file paths in it are taken relative to `base_dir`."""
    top = r.mapping(doc, "", ("version", "node", "underlay", "overlay", "controllers"), ("version", "node", "underlay"))
    if top is None:
        return None
    version = r.integer(top, "", "version", 1, 1_000_000)
    if version is not None:
        r.require(version in SUPPORTED_VERSIONS, "version", f"unsupported version {version} (allowed: 1)")
    node = _node(top.get("node"), r) if "node" in top else None
    underlay = _underlay(top.get("underlay"), base_dir, node, r) if "underlay" in top else None
    overlay = build_overlay(top["overlay"], node, underlay, r) if "overlay" in top else None
    controllers = build_controllers(top["controllers"], base_dir, node, underlay, r) if "controllers" in top else None
    if node is not None:
        _role_sections(node, top, r)
    if r.problems or node is None or underlay is None or version is None:
        return None
    return Intent(version=version, node=node, underlay=underlay, overlay=overlay, controllers=controllers)


def _role_sections(node: Node, top: dict[str, Any], r: Reader) -> None:
    if node.role == "spine":
        for key in ("overlay", "controllers"):
            r.require(
                key not in top,
                key,
                "a spine carries no overlay: remove this section (or set node.role: leaf)",
            )
    else:
        r.require("overlay" in top, "overlay", "is required on a leaf (the bridge and its GRE tunnels)")


# --- node -------------------------------------------------------------------------------------------


def _node(raw: Any, r: Reader) -> Node | None:
    m = r.mapping(
        raw,
        "node",
        ("hostname", "role", "router_id", "loopback"),
        ("hostname", "role", "router_id", "loopback"),
    )
    if m is None:
        return None
    hostname = r.string(m, "node", "hostname")
    if hostname is not None:
        r.require(
            len(hostname) <= HOSTNAME_MAX and bool(_HOSTNAME.fullmatch(hostname)),
            "node.hostname",
            f"{shown(hostname)} is not a valid hostname (allowed: letters, digits and - in dot-separated labels "
            f"of 1..63, at most {HOSTNAME_MAX} characters)",
        )
    role = r.string(m, "node", "role", choices=("leaf", "spine"))
    router_id = r.ipv4(m["router_id"], "node.router_id") if "router_id" in m else None
    loopback = _loopback(m.get("loopback"), r) if "loopback" in m else None
    if r.problems or None in (hostname, role, router_id, loopback):
        return None
    return Node(hostname=hostname, role=role, router_id=router_id, loopback=loopback)  # type: ignore[arg-type]


def _loopback(value: Any, r: Reader) -> ipaddress.IPv4Interface | None:
    lo = r.parsed(value, "node.loopback", ipaddress.IPv4Interface, "an IPv4 /32 such as 198.18.0.11/32")
    if lo is None:
        return None
    ok = r.require(lo.network.prefixlen == 32, "node.loopback", f"{value} must be a /32 (it is the VTEP address)")
    ok = ok and r.ipv4(str(lo.ip), "node.loopback") is not None
    return lo if ok else None


# --- underlay ---------------------------------------------------------------------------------------


def _underlay(raw: Any, base_dir: Path, node: Node | None, r: Reader) -> Underlay | None:
    m = r.mapping(raw, "underlay", ("ospf", "uplinks"), ("ospf", "uplinks"))
    if m is None:
        return None
    ospf = _ospf(m.get("ospf"), base_dir, r) if "ospf" in m else None
    uplinks = _uplinks(m, node, r) if "uplinks" in m else None
    if ospf is None or uplinks is None:
        return None
    return Underlay(ospf=ospf, uplinks=uplinks)


def _area(m: dict[str, Any], r: Reader) -> str | None:
    value, path = m.get("area", "0.0.0.0"), "underlay.ospf.area"
    if isinstance(value, int) and not isinstance(value, bool):
        ok = r.require(
            L.OSPF_AREA[0] <= value <= L.OSPF_AREA[1],
            path,
            f"{value} is out of range (allowed: 0..4294967295 or A.B.C.D)",
        )
        return str(ipaddress.IPv4Address(value)) if ok else None
    area = r.parsed(value, path, ipaddress.IPv4Address, "an area ID: A.B.C.D or 0..4294967295")
    return str(area) if area is not None else None


def _ospf(raw: Any, base_dir: Path, r: Reader) -> Ospf | None:
    p = "underlay.ospf"
    keys = (
        "area",
        "maximum_paths",
        "reference_bandwidth_mbps",
        "hello_interval_s",
        "dead_interval_s",
        "bfd",
        "authentication",
        "lsa_throttle_ms",
        "lsa_min_arrival_ms",
    )
    m = r.mapping(raw, p, keys)
    if m is None:
        return None
    n = len(r.problems)
    area = _area(m, r)
    maximum_paths = r.integer(m, p, "maximum_paths", *L.OSPF_MAXIMUM_PATHS, default=L.OSPF_MAXIMUM_PATHS[1])
    ref_bw = r.integer(m, p, "reference_bandwidth_mbps", *L.OSPF_REFERENCE_BANDWIDTH_MBPS, default=100000)
    hello = r.integer(m, p, "hello_interval_s", *L.OSPF_INTERVAL_S, default=None)
    dead = r.integer(m, p, "dead_interval_s", *L.OSPF_INTERVAL_S, default=None)
    if hello is not None:
        r.require(
            (dead or 40) > hello,
            join(p, "dead_interval_s"),
            f"must be greater than hello_interval_s ({hello}); 4 x hello is usual",
        )
    elif dead is not None:
        r.require(
            dead > OSPF_DEFAULT_HELLO_S,
            join(p, "dead_interval_s"),
            f"must be greater than the hello interval, FRR's default {OSPF_DEFAULT_HELLO_S} s as hello_interval_s "
            "is not set; 4 x hello is usual",
        )
    bfd = _bfd(m["bfd"], r) if "bfd" in m else None
    auth = _auth(m["authentication"], base_dir, r) if "authentication" in m else None
    lsa_throttle = r.integer(m, p, "lsa_throttle_ms", *L.OSPF_LSA_THROTTLE_MS, default=5000)
    lsa_min_arrival = r.integer(m, p, "lsa_min_arrival_ms", *L.OSPF_LSA_MIN_ARRIVAL_MS, default=1000)
    if len(r.problems) > n or area is None:
        return None
    return Ospf(area, maximum_paths, ref_bw, hello, dead, bfd, auth, lsa_throttle, lsa_min_arrival)


def _bfd(raw: Any, r: Reader) -> Bfd | None:
    p = "underlay.ospf.bfd"
    m = r.mapping(raw, p, ("enabled", "rx_ms", "tx_ms", "multiplier"))
    if m is None:
        return None
    n = len(r.problems)
    bfd = Bfd(
        enabled=r.boolean(m, p, "enabled", default=True),
        rx_ms=r.integer(m, p, "rx_ms", *L.BFD_INTERVAL_MS, default=300),
        tx_ms=r.integer(m, p, "tx_ms", *L.BFD_INTERVAL_MS, default=300),
        multiplier=r.integer(m, p, "multiplier", *L.BFD_MULTIPLIER, default=3),
    )
    return bfd if len(r.problems) == n else None


def _auth(raw: Any, base_dir: Path, r: Reader) -> OspfAuth | None:
    p = "underlay.ospf.authentication"
    m = r.mapping(raw, p, ("key_id", "key_file"), ("key_id", "key_file"))
    if m is None:
        return None
    key_id = r.integer(m, p, "key_id", *L.OSPF_KEY_ID)
    key_file = r.string(m, p, "key_file")
    if key_file is None or key_id is None:
        return None
    key_file = resolve(base_dir, key_file)
    where = join(p, "key_file")
    try:
        content = read_file(key_file)
    except FileProblem as e:
        r.require(False, where, f"cannot read {one_line(key_file)}: {e} (create it holding the MD5 key, mode 0600)")
        return None
    key = content.data.strip().decode("ascii", errors="replace")
    lo, hi = L.OSPF_MD5_KEY_LEN
    ok = r.require(
        lo <= len(key) <= hi and bool(_OSPF_KEY.fullmatch(key)) and "?" not in key,
        where,
        f"{one_line(key_file)} must hold one key of {lo}..{hi} ASCII printable characters without spaces or ? "
        "(FRR counts bytes; vtysh takes ? as a request for help)",
    )
    secret_file_mode(content.mode, key_file, where, r)
    return OspfAuth(key_id=key_id, key_file=key_file, key=key) if ok else None


def _uplinks(m: dict[str, Any], node: Node | None, r: Reader) -> tuple[Uplink, ...] | None:
    items = r.items(m, "underlay", "uplinks")
    if items is None:
        return None
    r.require(len(items) > 0, "underlay.uplinks", "needs at least one uplink")
    n = len(r.problems)
    uplinks = [_uplink(raw, path, r) for path, raw in items]
    if len(r.problems) > n:
        return None
    checked = tuple(u for u in uplinks if u is not None)
    _uplinks_apart(checked, node, r)
    return checked if len(r.problems) == n else None


def _uplink(raw: Any, p: str, r: Reader) -> Uplink | None:
    m = r.mapping(raw, p, ("name", "address", "unnumbered", "cost", "mtu", "bridge"), ("name",))
    if m is None:
        return None
    n = len(r.problems)
    name = ifname(m["name"], join(p, "name"), r) if "name" in m else None
    unnumbered = r.boolean(m, p, "unnumbered", default=False)
    address = None
    if "address" in m:
        address = r.parsed(
            m["address"],
            join(p, "address"),
            ipaddress.IPv4Interface,
            "an IPv4 address with prefix, e.g. 198.18.1.1/31",
        )
    r.require(
        ("address" in m) != bool(unnumbered),
        p,
        "set exactly one of address (numbered) or unnumbered: true (borrows the loopback /32)",
    )
    if address is not None:
        _link_address(address, join(p, "address"), r)
    cost = r.integer(m, p, "cost", *L.OSPF_COST, default=None)
    mtu = r.integer(m, p, "mtu", *L.MTU, default=1500)
    bridge = ifname(m["bridge"], join(p, "bridge"), r) if "bridge" in m else None
    if len(r.problems) > n or name is None:
        return None
    return Uplink(name=name, address=address, unnumbered=bool(unnumbered), cost=cost, mtu=mtu, bridge=bridge)


def _link_address(address: ipaddress.IPv4Interface, path: str, r: Reader) -> None:
    net = address.network
    why = unicast_problem(address.ip)
    if not r.require(why is None, path, f"{address.ip} is not a unicast address ({why}; allowed: a host address)"):
        return
    if not r.require(
        8 <= net.prefixlen <= 31,
        path,
        f"{address} must be a /8../31 link prefix (use unnumbered: true for /32)",
    ):
        return
    if net.prefixlen < 31:
        r.require(
            address.ip not in (net.network_address, net.broadcast_address),
            path,
            f"{address.ip} is the network or broadcast address of {net} (allowed: a host address)",
        )


def _uplinks_apart(uplinks: tuple[Uplink, ...], node: Node | None, r: Reader) -> None:
    """Names unique; subnets apart from each other and from the loopback (sorted: n log n, not n²)."""
    seen: dict[str, int] = {}
    for i, u in enumerate(uplinks):
        if u.name in seen:
            r.require(
                False,
                f"underlay.uplinks[{i}].name",
                f"{u.name!r} is already underlay.uplinks[{seen[u.name]}] (names must be unique)",
            )
        seen.setdefault(u.name, i)
        if u.address is not None and node is not None:
            r.require(
                node.loopback.ip not in u.address.network,
                f"underlay.uplinks[{i}].address",
                f"{u.address.network} contains the loopback {node.loopback.ip} (keep the loopback outside every link)",
            )
    _subnets_apart(uplinks, r)


def _subnets_apart(uplinks: tuple[Uplink, ...], r: Reader) -> None:
    # CIDR blocks either nest or are disjoint: in address order, a block overlaps an earlier one exactly
    # when it starts before the widest block seen so far ends.
    numbered = sorted(
        (int(u.address.network.network_address), -u.address.network.prefixlen, i)
        for i, u in enumerate(uplinks)
        if u.address is not None
    )
    widest: tuple[int, int] | None = None  # (last address, index)
    overlaps: list[tuple[int, int]] = []
    for start, _, i in numbered:
        net = uplinks[i].address.network  # type: ignore[union-attr]
        if widest is not None and start <= widest[0]:
            overlaps.append((i, widest[1]))
        if widest is None or int(net.broadcast_address) > widest[0]:
            widest = (int(net.broadcast_address), i)
    for i, j in sorted(overlaps):
        first, later = sorted((i, j))
        other = uplinks[first].address.network  # type: ignore[union-attr]
        r.require(
            False,
            f"underlay.uplinks[{later}].address",
            f"{uplinks[later].address.network} overlaps underlay.uplinks[{first}] ({other})",  # type: ignore[union-attr]
        )

"""Read a containerlab topology (or a plain YAML with the same `nodes`/`links` shape) into a fabric.

Only what the fabric needs is kept: the nodes labelled `tor-agent.role` (spine, leaf, host, controller)
with their hostname and management addresses, the leaf-spine links and the leaf-host links. Labels
inherit as containerlab does: `topology.defaults` < `kinds[kind]` < `groups[group]` < the node. Nodes
without the role label are left out (with a note), and so are links that reach one of them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tor_agent.config.values import IFNAME_MAX
from tor_agent.fabric.findings import Finding, Findings
from tor_agent.fabric.yamlfile import read_yaml

Role = Literal["spine", "leaf", "host", "controller"]
ROLES: tuple[Role, ...] = ("spine", "leaf", "host", "controller")
ROLE_LABEL = "tor-agent.role"
DEFAULT_LINK_MTU = 9500  # containerlab's veth MTU when a link sets none
MGMT_IFACE = "eth0"
# The short link form's pseudo-nodes: the host's own namespace, the management bridge, a macvlan parent.
SPECIAL_NODES = ("host", "mgmt-net", "macvlan")
_NODE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-._|]*$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.@-]+$")
_PLURAL = {"spine": "spines", "leaf": "leaves", "host": "hosts", "controller": "controllers"}
_SINGLE_ENDPOINT_TYPES = ("host", "mgmt-net", "macvlan", "dummy", "vxlan", "vxlan-stitch")


@dataclass(frozen=True)
class Endpoint:
    node: str
    iface: str

    def __str__(self) -> str:
        return f"{self.node}:{self.iface}"


@dataclass(frozen=True)
class Node:
    """A node with a tor-agent role."""

    name: str
    role: Role
    hostname: str  # the node's `hostname`, else its name (as containerlab sets it)
    mgmt_ipv4: ipaddress.IPv4Address | None
    mgmt_ipv6: ipaddress.IPv6Address | None

    @property
    def mgmt_addresses(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
        return tuple(a for a in (self.mgmt_ipv4, self.mgmt_ipv6) if a is not None)


@dataclass(frozen=True)
class FabricLink:
    """A leaf-spine link; `index` is its position in the topology's `links`."""

    index: int
    spine: Endpoint
    leaf: Endpoint
    mtu: int
    spine_address: ipaddress.IPv4Interface | None = None  # given in the topology (link or endpoint ipv4)
    leaf_address: ipaddress.IPv4Interface | None = None

    def __str__(self) -> str:
        return f"{self.spine} -- {self.leaf}"

    def end(self, node: str) -> Endpoint:
        return self.spine if node == self.spine.node else self.leaf

    def other(self, node: str) -> Endpoint:
        return self.leaf if node == self.spine.node else self.spine


@dataclass(frozen=True)
class AccessLink:
    """A leaf-host link."""

    index: int
    leaf: Endpoint
    host: Endpoint
    mtu: int


@dataclass(frozen=True)
class Topology:
    name: str
    source: str
    nodes: dict[str, Node]  # the nodes with a role, in file order
    fabric_links: tuple[FabricLink, ...]  # in file order
    access_links: tuple[AccessLink, ...]
    section: str = "topology"  # where nodes and links are: "topology" (containerlab), "" (plain YAML)

    def node_path(self, name: str) -> str:
        """`FILE: topology.nodes.NAME`, for messages."""
        return _at(self.source, _join(_join(self.section, "nodes"), name))

    def link_path(self, link: FabricLink | AccessLink) -> str:
        """`FILE: topology.links[N]`, for messages."""
        return _at(self.source, _join(_join(self.section, "links"), link.index))

    def role(self, role: Role) -> list[Node]:
        """The nodes of `role`, in file order."""
        return [n for n in self.nodes.values() if n.role == role]

    @property
    def switches(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role in ("spine", "leaf")]


def read_topology(path: Path) -> tuple[Topology | None, list[Finding]]:
    """The topology in `path`, or None; with every problem found and the notes (nodes left out...)."""
    doc, problems = read_yaml(path, "topology file")
    if problems:
        return None, problems
    return parse_topology(doc, str(path), path.stem.removesuffix(".clab"))


def parse_topology(doc: Any, source: str, default_name: str = "fabric") -> tuple[Topology | None, list[Finding]]:
    """The topology in the parsed document `doc`; `source` names it in messages."""
    f = Findings()
    if not isinstance(doc, dict):
        f.error(source, "must be a mapping: a containerlab topology (name, topology.nodes, topology.links)")
        return None, f.items
    container, where = (doc.get("topology"), "topology") if "topology" in doc else (doc, "")
    if not isinstance(container, dict) or not isinstance(container.get("nodes"), dict):
        f.error(_at(source, _join(where, "nodes")), "must be a mapping of node names to nodes")
        return None, f.items
    reader = _Reader(source, where, container, f)
    raw = reader.nodes()
    fabric, access = reader.links(raw)
    name = doc.get("name") if isinstance(doc.get("name"), str) and doc.get("name") else default_name
    nodes = {n: node for n, node in raw.items() if node is not None}
    topo = Topology(str(name), source, nodes, fabric, access, where)
    _every_switch_linked(topo, f)
    if not topo.switches and not f.errors:
        f.error(source, f"has no spine or leaf (label the switches {ROLE_LABEL}: spine or leaf)")
    return (None if f.errors else topo), f.items


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _at(source: str, path: str) -> str:
    return f"{source}: {path}" if path else source


class _Reader:
    """Reads nodes and links, recording every problem into `f`."""

    def __init__(self, source: str, where: str, container: dict[str, Any], f: Findings) -> None:
        self.source, self.where, self.container, self.f = source, where, container, f

    def error(self, path: str, message: str) -> None:
        self.f.error(_at(self.source, _join(self.where, path)), message)

    def section(self, key: str) -> dict[str, Any]:
        value = self.container.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(key, "must be a mapping")
            return {}
        return value

    # --- nodes ----------------------------------------------------------------------------------------

    def nodes(self) -> dict[str, Node | None]:
        """Every node by name: a `Node` when it has a role, None when it is left out."""
        defaults, kinds, groups = self.section("defaults"), self.section("kinds"), self.section("groups")
        found: dict[str, Node | None] = {}
        for name, raw in self.container["nodes"].items():
            path = _join("nodes", str(name))
            if not isinstance(name, str) or not _NODE_NAME.match(name):
                self.error(path, "is not a node name (letters, digits, - . _ |; starting with a letter or digit)")
                continue
            if raw is not None and not isinstance(raw, dict):
                self.error(path, "must be a mapping (the node's kind, labels, mgmt-ipv4, ...)")
                continue
            found[name] = self.node(name, path, raw or {}, defaults, kinds, groups)
        return found

    def node(
        self, name: str, path: str, raw: dict[str, Any], defaults: dict[str, Any], kinds: Any, groups: Any
    ) -> Node | None:
        group = raw.get("group", defaults.get("group"))
        group_level = groups.get(group) if isinstance(group, str) else None
        kind = raw.get("kind") or (group_level or {}).get("kind") or defaults.get("kind", "linux")
        kind_level = kinds.get(kind) if isinstance(kind, str) else None
        levels = [lv for lv in (defaults, kind_level, group_level, raw) if isinstance(lv, dict)]
        labels: dict[Any, Any] = {}
        for level in levels:
            value = level.get("labels") or {}
            if isinstance(value, dict):
                labels.update(value)
            else:
                self.error(_join(path, "labels"), "must be a mapping of label names to values")
        merged = {k: v for level in levels for k, v in level.items()}
        role = labels.get(ROLE_LABEL)
        if role is None:
            self.f.note(
                _at(self.source, _join(self.where, path)),
                f"has no {ROLE_LABEL} label: left out of the fabric (label it spine, leaf, host or controller)",
            )
            return None
        if role not in ROLES:
            self.error(
                _join(path, "labels"),
                f"{ROLE_LABEL} is {role!r} (allowed: {' | '.join(ROLES)}; remove the label to leave the node out)",
            )
            return None
        hostname = merged.get("hostname", name)
        if not isinstance(hostname, str) or not hostname:
            self.error(_join(path, "hostname"), f"must be a non-empty string, got {hostname!r}")
            hostname = name
        v4 = self.address(merged, path, "mgmt-ipv4", ipaddress.IPv4Address)
        v6 = self.address(merged, path, "mgmt-ipv6", ipaddress.IPv6Address)
        return Node(name, role, hostname, v4, v6)

    def address(self, m: dict[str, Any], path: str, key: str, parse: Any) -> Any:
        if m.get(key) in (None, ""):
            return None
        try:
            return parse(str(m[key]))
        except ValueError:
            self.error(_join(path, key), f"{m[key]!r} is not an IP address")
            return None

    # --- links ----------------------------------------------------------------------------------------

    def links(self, nodes: dict[str, Node | None]) -> tuple[tuple[FabricLink, ...], tuple[AccessLink, ...]]:
        raw = self.container.get("links") or []
        if not isinstance(raw, list):
            self.error("links", "must be a list of links")
            return (), ()
        fabric: list[FabricLink] = []
        access: list[AccessLink] = []
        used: dict[Endpoint, int] = {}
        for i, link in enumerate(raw):
            parsed = self.link(i, link, nodes, used)
            if isinstance(parsed, FabricLink):
                fabric.append(parsed)
            elif isinstance(parsed, AccessLink):
                access.append(parsed)
        return tuple(fabric), tuple(access)

    def link(
        self, i: int, raw: Any, nodes: dict[str, Node | None], used: dict[Endpoint, int]
    ) -> FabricLink | AccessLink | None:
        path = _join("links", i)
        if not isinstance(raw, dict):
            self.error(path, "must be a mapping (endpoints, mtu)")
            return None
        kind = raw.get("type", "veth")
        if kind in _SINGLE_ENDPOINT_TYPES:
            self.single_endpoint(path, raw, kind, nodes)
            return None
        if kind != "veth":
            self.error(_join(path, "type"), f"{kind!r} is not a link type this tool reads (veth, or the short form)")
            return None
        ends = self.endpoints(i, raw, nodes, used)
        mtu = self.mtu(path, raw)
        if ends is None or mtu is None:
            return None
        addresses = self.link_addresses(path, raw)
        return self.classify(i, path, ends, mtu, addresses, nodes)

    def single_endpoint(self, path: str, raw: dict[str, Any], kind: str, nodes: dict[str, Node | None]) -> None:
        ep = raw.get("endpoint")
        name = ep.get("node") if isinstance(ep, dict) else None
        node = nodes.get(name) if isinstance(name, str) else None
        if node is not None and node.role in ("spine", "leaf"):
            self.f.note(_at(self.source, _join(self.where, path)), f"a {kind} link of {node.name}: not rendered")

    def endpoints(
        self, i: int, raw: dict[str, Any], nodes: dict[str, Node | None], used: dict[Endpoint, int]
    ) -> tuple[Endpoint, Endpoint] | None:
        path = f"links[{i}].endpoints"
        eps = raw.get("endpoints")
        if not isinstance(eps, list) or len(eps) != 2:
            self.error(path, 'needs exactly two endpoints, e.g. ["spine1:eth1", "leaf1:eth1"]')
            return None
        found = [self.endpoint(_join(path, j), e, nodes) for j, e in enumerate(eps)]
        ends = [ep for ep in found if ep is not None]
        if len(ends) != 2:
            return None
        ok = True
        for j, ep in enumerate(ends):
            if ep in used:
                self.error(_join(path, j), f"{ep} is already used by links[{used[ep]}] (one link per interface)")
                ok = False
            used.setdefault(ep, i)
        return (ends[0], ends[1]) if ok else None

    def endpoint(self, path: str, raw: Any, nodes: dict[str, Node | None]) -> Endpoint | None:
        if isinstance(raw, str) and ":" in raw:
            node, iface = raw.split(":", 1)
        elif isinstance(raw, dict) and isinstance(raw.get("node"), str) and isinstance(raw.get("interface"), str):
            node, iface = raw["node"], raw["interface"]
        else:
            self.error(path, f"{raw!r} is neither NODE:INTERFACE nor {{node: NODE, interface: INTERFACE}}")
            return None
        if node not in nodes and node not in SPECIAL_NODES:
            self.error(path, f"no node named {node!r} in {_join(self.where, 'nodes')}")
            return None
        if not (0 < len(iface) <= IFNAME_MAX and _IFNAME.match(iface)):
            self.error(
                path,
                f"{node}:{iface}: {iface!r} is not a Linux interface name "
                f"(1..{IFNAME_MAX} characters of letters, digits, _ . @ -)",
            )
            return None
        if iface == MGMT_IFACE and node in nodes:
            self.error(path, f"{node}:{iface}: eth0 is the management interface (use eth1 and up)")
            return None
        return Endpoint(node, iface)

    def mtu(self, path: str, raw: dict[str, Any]) -> int | None:
        mtu = raw.get("mtu", DEFAULT_LINK_MTU)
        if isinstance(mtu, float) and mtu.is_integer():
            mtu = int(mtu)
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not 1 <= mtu <= 65535:
            self.error(_join(path, "mtu"), f"must be an integer 1..65535, got {mtu!r}")
            return None
        return mtu

    def link_addresses(self, path: str, raw: dict[str, Any]) -> list[ipaddress.IPv4Interface | None]:
        """The IPv4 addresses the topology gives each end: `ipv4: [A, B]` or each endpoint's `ipv4`."""
        given: list[Any] = [None, None]
        if isinstance(raw.get("ipv4"), list) and len(raw["ipv4"]) <= 2:
            given = [*raw["ipv4"], None, None][:2]
        elif raw.get("ipv4") is not None:
            self.error(_join(path, "ipv4"), "must be a list of one address per end, e.g. [10.0.0.0/31, 10.0.0.1/31]")
        for j, ep in enumerate(raw.get("endpoints") or []):
            if isinstance(ep, dict) and ep.get("ipv4") not in (None, "") and j < 2:
                given[j] = ep["ipv4"]
        found: list[ipaddress.IPv4Interface | None] = []
        for j, value in enumerate(given):
            if value in (None, ""):
                found.append(None)
                continue
            try:
                found.append(ipaddress.IPv4Interface(str(value)))
            except ValueError:
                self.error(_join(path, "ipv4"), f"{value!r} (end {j + 1}) is not an IPv4 address with prefix")
                found.append(None)
        return found

    def classify(
        self,
        i: int,
        path: str,
        ends: tuple[Endpoint, Endpoint],
        mtu: int,
        addresses: list[ipaddress.IPv4Interface | None],
        nodes: dict[str, Node | None],
    ) -> FabricLink | AccessLink | None:
        a, b = ends
        na, nb = nodes.get(a.node), nodes.get(b.node)
        text = f"{a} -- {b}"
        if na is None or nb is None:
            here, away = (a, b) if na is not None else (b, a)
            near = na or nb
            if near is not None and near.role in ("spine", "leaf"):
                self.f.note(
                    _at(self.source, _join(self.where, path)),
                    f"{text}: {away.node} is not a node with a {ROLE_LABEL}: {here} is not rendered",
                    [near.name],
                )
            return None
        if a.node == b.node:
            self.error(path, f"{text}: both ends are on {a.node}")
            return None
        roles = {na.role: a, nb.role: b}
        if set(roles) == {"leaf", "spine"}:
            leaf_first = na.role == "leaf"
            return FabricLink(
                i,
                roles["spine"],
                roles["leaf"],
                mtu,
                addresses[1] if leaf_first else addresses[0],
                addresses[0] if leaf_first else addresses[1],
            )
        if set(roles) == {"leaf", "host"}:
            if any(addresses):
                self.f.note(_at(self.source, _join(self.where, path)), f"{text}: ipv4 on a host link is not rendered")
            return AccessLink(i, roles["leaf"], roles["host"], mtu)
        if {na.role, nb.role} & {"spine", "leaf"}:
            pair = f"a {na.role} and a {nb.role}" if na.role != nb.role else f"two {_PLURAL[na.role]}"
            self.error(
                path,
                f"{text}: a link between {pair} is not supported "
                "(a fabric link joins a leaf and a spine; a host link joins a leaf and a host)",
            )
        return None


def _every_switch_linked(topo: Topology, f: Findings) -> None:
    linked = {lk.spine.node for lk in topo.fabric_links} | {lk.leaf.node for lk in topo.fabric_links}
    for node in topo.switches:
        if node.name not in linked:
            other = "spine" if node.role == "leaf" else "leaf"
            f.error(
                topo.node_path(node.name),
                f"{node.role} {node.name} has no link to a {other} (add one to links)",
                [node.name],
            )

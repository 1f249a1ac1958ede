"""Read a containerlab topology file into plain data, with containerlab's inheritance and deploy-time rules.

Inheritance: `topology.defaults` < `topology.kinds[kind]` < `topology.groups[group]` < the node; labels and
env merge key by key, binds merge by target (the most specific wins), `exec` is taken from the most
specific level that has one. Supported links: the short form and `type: veth`, with the addresses
containerlab puts on endpoints (`ipv4`/`ipv6`: a list in endpoint order on a short link, one per endpoint
on an extended one).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

ROLES = ("spine", "leaf", "host", "controller")
SWITCH_ROLES = ("spine", "leaf")  # the roles that run FRR and tor-agent
ROLE_LABEL = "tor-agent.role"
INTENT_TARGET = "/etc/tor-agent/agent.yaml"
DEFAULT_LINK_MTU = 9500  # containerlab's default veth MTU
NODE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-._]*$")
IFNAME_MAX = 15


class TopologyError(Exception):
    """The topology file cannot be realised; the message lists every problem found."""


@dataclass(frozen=True)
class Endpoint:
    node: str
    iface: str
    mac: str | None = None
    addresses: tuple[str, ...] = ()  # IPv4/IPv6 interfaces the lab puts on it (ADDRESS/PREFIXLEN)

    def __str__(self) -> str:
        return f"{self.node}:{self.iface}"


@dataclass(frozen=True)
class Link:
    a: Endpoint
    b: Endpoint
    mtu: int


@dataclass(frozen=True)
class Bind:
    source: Path  # absolute, on the host
    target: str  # absolute, inside the node
    read_only: bool


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    group: str
    role: str
    mgmt_ipv4: ipaddress.IPv4Address
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    binds: tuple[Bind, ...] = ()
    exec: tuple[str, ...] = ()

    def intent_file(self) -> Path | None:
        """The host file the node sees at /etc/tor-agent/agent.yaml (switches), if any."""
        return self.bound_file(INTENT_TARGET)

    def bound_file(self, target: str) -> Path | None:
        """The host path the node sees at `target` through its binds: the bind of that file, or of a directory
        holding it (`configs/sp1:/etc/tor-agent`); the most specific bind wins, as in the node's tree."""
        for bind in sorted(self.binds, key=lambda b: len(b.target), reverse=True):
            if PurePosixPath(target).is_relative_to(bind.target):
                return bind.source / PurePosixPath(target).relative_to(bind.target)
        return None


@dataclass(frozen=True)
class Topology:
    name: str
    path: Path
    nodes: dict[str, Node]
    links: tuple[Link, ...]
    mgmt_subnet: ipaddress.IPv4Network
    mgmt_mtu: int

    def netns(self, node: str) -> str:
        """The network namespace of a node (containerlab's container name)."""
        return f"clab-{self.name}-{node}"

    @property
    def mgmt_netns(self) -> str:
        """The lab-owned namespace holding the management bridge (no node name starts with `_`)."""
        return f"clab-{self.name}-_mgmt"

    def links_of(self, node: str) -> list[tuple[Endpoint, Endpoint, int]]:
        """(local endpoint, remote endpoint, mtu) of every data link of `node`."""
        found = []
        for link in self.links:
            if link.a.node == node:
                found.append((link.a, link.b, link.mtu))
            if link.b.node == node:
                found.append((link.b, link.a, link.mtu))
        return found

    def by_role(self, role: str) -> list[Node]:
        """The nodes with `role`, in file order."""
        return [n for n in self.nodes.values() if n.role == role]


def lab_name(path: Path) -> str:
    """Only the lab's name: enough for `down`, even when the rest of the file no longer validates."""
    data = _read_yaml(path)
    name = data.get("name")
    if not isinstance(name, str) or not NODE_NAME.match(name):
        raise TopologyError(f"{path}: `name` must be a topology name such as tor-fabric")
    return name


def load(path: Path) -> Topology:
    """Parse and check a topology file; raise TopologyError listing every problem."""
    path = path.resolve()
    data = _read_yaml(path)
    problems: list[str] = []
    name = lab_name(path)
    topo = data.get("topology") or {}
    mgmt = data.get("mgmt") or {}
    subnet = ipaddress.IPv4Network(mgmt.get("ipv4-subnet", "172.20.20.0/24"))
    raw_nodes = topo.get("nodes") or {}
    nodes = {n: _node(path, topo, n, raw or {}, problems) for n, raw in raw_nodes.items()}
    links = tuple(_link(raw, i, problems) for i, raw in enumerate(topo.get("links") or []))
    _check_links(links, nodes, problems)
    resolved = _assign_mgmt(nodes, subnet, problems)
    if problems:
        raise TopologyError(f"{path}:\n  " + "\n  ".join(problems))
    return Topology(name, path, resolved, links, subnet, int(mgmt.get("mtu", 1500)))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise TopologyError(f"{path}: {e}") from e
    if not isinstance(data, dict):
        raise TopologyError(f"{path}: not a containerlab topology (expected a mapping)")
    return data


def _levels(topo: dict[str, Any], raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The config levels that apply to a node, least specific first."""
    defaults = topo.get("defaults") or {}
    kind = raw.get("kind") or defaults.get("kind", "linux")
    group = raw.get("group") or defaults.get("group", "")
    return [
        defaults,
        (topo.get("kinds") or {}).get(kind) or {},
        (topo.get("groups") or {}).get(group) or {},
        raw,
    ]


def _node(path: Path, topo: dict[str, Any], name: str, raw: dict[str, Any], problems: list[str]) -> Node:
    levels = _levels(topo, raw)
    merged: dict[str, Any] = {}
    labels: dict[str, str] = {}
    env: dict[str, str] = {}
    binds: dict[str, Bind] = {}
    for level in levels:
        merged.update(level)
        labels.update({str(k): str(v) for k, v in (level.get("labels") or {}).items()})
        env.update({str(k): str(v) for k, v in (level.get("env") or {}).items()})
        for spec in level.get("binds") or []:
            bind = _bind(path, name, spec, problems)
            if bind:
                binds[bind.target] = bind
    execs: list[Any] = next((lv["exec"] for lv in reversed(levels) if lv.get("exec")), [])
    role = labels.get(ROLE_LABEL, "")
    if not NODE_NAME.match(name):
        problems.append(f"node {name!r}: not a valid node name")
    if role not in ROLES:
        problems.append(f"node {name}: label {ROLE_LABEL} is {role!r} (allowed: {' | '.join(ROLES)})")
    mgmt = merged.get("mgmt-ipv4")
    node = Node(
        name=name,
        kind=str(merged.get("kind", "linux")),
        group=str(merged.get("group", "")),
        role=role,
        mgmt_ipv4=ipaddress.IPv4Address(mgmt) if mgmt else ipaddress.IPv4Address(0),
        labels=labels,
        env=env,
        binds=tuple(binds.values()),
        exec=tuple(str(e) for e in execs),
    )
    intent = node.intent_file()
    if role in ("spine", "leaf") and (intent is None or not intent.is_file()):
        where = f"{INTENT_TARGET} (a bind of the file, or of a directory holding agent.yaml)"
        problems.append(f"node {name}: a {role} needs its intent file bound to {where}")
    return node


def _bind(path: Path, node: str, spec: str, problems: list[str]) -> Bind | None:
    parts = spec.replace("__clabNodeName__", node).split(":")
    if len(parts) not in (2, 3) or not parts[1].startswith("/"):
        problems.append(f"node {node}: bind {spec!r} is not SOURCE:/TARGET[:ro]")
        return None
    source = (path.parent / Path(parts[0]).expanduser()).resolve()
    if not source.exists():
        problems.append(f"node {node}: bind source {source} does not exist")
    return Bind(source, parts[1], read_only=len(parts) == 3 and "ro" in parts[2].split(","))


def _endpoint(raw: Any, where: str, addresses: list[Any], problems: list[str]) -> Endpoint:
    found = tuple(_address(a, where, problems) for a in addresses if a)
    if isinstance(raw, str) and raw.count(":") == 1:
        node, iface = raw.split(":")
        return Endpoint(node, iface, addresses=found)
    if isinstance(raw, dict) and "node" in raw and "interface" in raw:
        own = tuple(_address(raw[k], where, problems) for k in ("ipv4", "ipv6") if raw.get(k))
        return Endpoint(str(raw["node"]), str(raw["interface"]), raw.get("mac"), found + own)
    problems.append(f"{where}: endpoint {raw!r} is neither NODE:IFACE nor {{node, interface}}")
    return Endpoint("?", "?")


def _address(raw: Any, where: str, problems: list[str]) -> str:
    try:
        if "/" in str(raw):
            return str(ipaddress.ip_interface(str(raw)))
    except ValueError:
        pass
    problems.append(f"{where}: {raw!r} is not an address with a prefix length (e.g. 198.51.100.11/24)")
    return ""


def _by_endpoint(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> list[Any]:
    """A short link's `ipv4`/`ipv6`: one per endpoint, in endpoint order (empty: none for that one)."""
    value = raw.get(key) or []
    if not isinstance(value, list) or len(value) > 2:
        problems.append(f"{where}: {key} must be a list of at most two addresses, one per endpoint")
        return ["", ""]
    return [*value, "", ""][:2]


def _link(raw: dict[str, Any], index: int, problems: list[str]) -> Link:
    where = f"links[{index}]"
    kind = raw.get("type", "veth")
    if kind != "veth":
        problems.append(f"{where}: link type {kind!r} is not supported here (only veth links)")
    eps = raw.get("endpoints") or []
    if len(eps) != 2:
        problems.append(f"{where}: needs exactly two endpoints")
        eps = [*eps, "?:?", "?:?"][:2]
    v4, v6 = (_by_endpoint(raw, key, where, problems) for key in ("ipv4", "ipv6"))
    a, b = (_endpoint(e, where, [v4[i], v6[i]], problems) for i, e in enumerate(eps))
    return Link(a, b, int(raw.get("mtu", DEFAULT_LINK_MTU)))


def _check_links(links: tuple[Link, ...], nodes: dict[str, Node], problems: list[str]) -> None:
    seen: set[tuple[str, str]] = set()
    for link in links:
        for ep in (link.a, link.b):
            if ep.node not in nodes:
                problems.append(f"link {link.a} -- {link.b}: no node named {ep.node!r}")
            if ep.iface == "eth0":
                problems.append(f"link {link.a} -- {link.b}: eth0 is the management interface")
            if len(ep.iface) > IFNAME_MAX:
                problems.append(f"link {link.a} -- {link.b}: {ep.iface!r} is longer than {IFNAME_MAX} characters")
            if (ep.node, ep.iface) in seen:
                problems.append(f"endpoint {ep} is used by more than one link")
            seen.add((ep.node, ep.iface))


def _assign_mgmt(nodes: dict[str, Node], subnet: ipaddress.IPv4Network, problems: list[str]) -> dict[str, Node]:
    """Check static management addresses; give the others the next free address, as containerlab does."""
    zero = ipaddress.IPv4Address(0)
    taken: dict[ipaddress.IPv4Address, str] = {}
    for node in nodes.values():
        if node.mgmt_ipv4 == zero:
            continue
        if node.mgmt_ipv4 not in subnet:
            problems.append(f"node {node.name}: mgmt-ipv4 {node.mgmt_ipv4} is outside {subnet}")
        if node.mgmt_ipv4 in taken:
            problems.append(f"node {node.name}: mgmt-ipv4 {node.mgmt_ipv4} is also {taken[node.mgmt_ipv4]}'s")
        taken[node.mgmt_ipv4] = node.name
    free = (a for a in list(subnet.hosts())[1:] if a not in taken)  # the first host is the gateway's
    resolved = {}
    for name, node in nodes.items():
        if node.mgmt_ipv4 == zero:
            node = replace(node, mgmt_ipv4=next(free))
        resolved[name] = node
    return resolved

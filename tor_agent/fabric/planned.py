"""`fabric.yaml` read back: the fabric a switch was rendered from (written by `tor_agent.fabric.view`).

Each key is declared once, with `setting()`, and read by the intent's own generic reader, so a damaged or
hand-edited file is refused with every problem at once, each naming its path: `links[3].leaf.address: ...`.
A file of 400 leaves on 4 spines (about 300 kB) reads in about a second; files over 2 MiB are refused unread.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any, Literal

from tor_agent.config import values as v
from tor_agent.config.declare import Invalid, setting
from tor_agent.config.quote import shown
from tor_agent.config.reader import MAX_PROBLEMS, Reader, TooManyProblems
from tor_agent.config.schema import MTU
from tor_agent.errors import ConfigError, Problem
from tor_agent.fabric.view import VIEW_FILE
from tor_agent.fabric.yamlfile import read_yaml

__all__ = ["VIEW_FILE", "FabricView", "PlannedEnd", "PlannedLink", "PlannedNode", "parse_view", "read_view"]

COST = (1, 65535)


def _name(value: Any) -> str:
    """A node name of the topology: a non-empty string on one line."""
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise Invalid(f"must be a node name, got {shown(value)}")
    return value


@dataclass(frozen=True)
class PlannedNeighbour:
    node: str = setting(parse=_name, doc="the switch at the far end")
    router_id: IPv4Address = setting(parse=v.ipv4_host, doc="its router ID")
    port: str = setting(parse=v.ifname, doc="its interface")
    address: IPv4Interface | None = setting(None, parse=v.link_address, doc="its address on the link")
    unnumbered: bool = setting(False, doc="the link borrows the loopbacks")


@dataclass(frozen=True, kw_only=True)
class PlannedUplink:
    name: str = setting(parse=v.ifname, doc="this switch's interface")
    address: IPv4Interface | None = setting(None, parse=v.link_address, doc="this switch's address on the link")
    unnumbered: bool = setting(False, doc="the link borrows the loopbacks")
    neighbour: PlannedNeighbour = setting(doc="what should be at the far end")


@dataclass(frozen=True)
class PlannedNode:
    name: str = setting(parse=_name, doc="the topology's node name")
    role: Literal["spine", "leaf"] = setting(doc="spine or leaf")
    router_id: IPv4Address = setting(parse=v.ipv4_host, doc="its OSPF router ID")
    loopback: IPv4Interface = setting(parse=v.loopback, doc="its loopback /32")


@dataclass(frozen=True)
class PlannedEnd:
    node: str = setting(parse=_name, doc="the switch at this end")
    port: str = setting(parse=v.ifname, doc="its interface")
    address: IPv4Interface | None = setting(None, parse=v.link_address, doc="its address (absent: unnumbered)")
    unnumbered: bool = setting(False, doc="the link borrows the loopbacks")
    cost: int | None = setting(None, range=COST, doc="its OSPF cost (absent: from the reference bandwidth)")

    def __str__(self) -> str:
        return f"{self.node}:{self.port}"


@dataclass(frozen=True)
class PlannedLink:
    spine: PlannedEnd = setting(doc="the spine's end")
    leaf: PlannedEnd = setting(doc="the leaf's end")
    mtu: int = setting(range=MTU, doc="the link's MTU")

    def __str__(self) -> str:
        return f"{self.spine} -- {self.leaf}"

    @property
    def numbered(self) -> bool:
        """Both ends have an address."""
        return self.spine.address is not None and self.leaf.address is not None


@dataclass(frozen=True, kw_only=True)
class FabricView:
    """The whole fabric as planned, seen from `node`."""

    version: Literal[1] = setting(doc="the file format")
    fabric: str = setting(parse=_name, doc="the topology's name")
    node: str = setting(parse=_name, doc="the switch this file is for")
    uplinks: tuple[PlannedUplink, ...] = setting((), doc="its uplinks and the neighbour expected on each")
    nodes: tuple[PlannedNode, ...] = setting(min_items=1, doc="every spine and leaf")
    links: tuple[PlannedLink, ...] = setting((), doc="every leaf-spine link")
    source: str = setting("<memory>", yaml=False, doc="the file it was read from")

    def node_named(self, name: str) -> PlannedNode | None:
        """The planned node called `name`."""
        return next((n for n in self.nodes if n.name == name), None)


def read_view(path: Path) -> FabricView:
    """Read and check the fabric.yaml at `path`; ConfigError (exit 2) naming every problem."""
    doc, findings = read_yaml(path, "fabric.yaml")
    if findings:
        raise ConfigError(str(path), [Problem("", f.message) for f in findings])
    return parse_view(doc, str(path))


def parse_view(doc: Any, source: str = "<memory>") -> FabricView:
    """A parsed fabric.yaml document, checked: every key declared, every link end a planned node."""
    r = Reader()
    try:
        view = r.section(FabricView, doc, "")
        if view is not None:
            _consistent(view, r)
    except TooManyProblems:
        r.problems.append(Problem("", f"stopped after {MAX_PROBLEMS} problems: render the file again"))
    if r.problems or view is None:
        raise ConfigError(source, r.problems or [Problem("", "is not a fabric.yaml")])
    return dataclasses.replace(view, source=source)


def _consistent(view: FabricView, r: Reader) -> None:
    seen: dict[str, int] = {}
    ids: dict[IPv4Address, int] = {}
    for i, node in enumerate(view.nodes):
        r.require(node.name not in seen, f"nodes[{i}].name", f"{node.name!r} is already nodes[{seen.get(node.name)}]")
        r.require(
            node.router_id not in ids,
            f"nodes[{i}].router_id",
            f"{node.router_id} is already the router ID of nodes[{ids.get(node.router_id)}]",
        )
        seen.setdefault(node.name, i)
        ids.setdefault(node.router_id, i)
    roles = {n.name: n.role for n in view.nodes}
    r.require(view.node in roles, "node", f"{view.node!r} is not among nodes")
    for i, link in enumerate(view.links):
        for role, end in (("spine", link.spine), ("leaf", link.leaf)):
            r.require(
                roles.get(end.node) == role,
                f"links[{i}].{role}.node",
                f"{end.node!r} is not a {role} among nodes",
            )

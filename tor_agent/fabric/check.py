"""Cross-switch consistency of a fabric's intents against its topology (pure): every problem at once.

The single-switch rules are the intent loader's; these are the ones no single intent can see: the two
ends of every leaf-spine link agree (addresses, MTU, OSPF area, timers, authentication, BFD, the neighbour
each end expects), router IDs,
loopbacks and DPIDs are unique, link subnets do not overlap, and the overlay (`check_overlay`) reaches
every leaf and no spine.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from tor_agent.config.schema import Intent, Ospf, Uplink
from tor_agent.fabric.findings import Finding, Findings, names
from tor_agent.fabric.topology import Endpoint, FabricLink, Topology
from tor_agent.fabric.yamlfile import natural_key

FRR_HELLO_S, FRR_DEAD_S = 10, 40  # FRR's own defaults when an intent sets no timers


@dataclass(frozen=True)
class Port:
    """One end of a link as an intent configures it."""

    node: str
    index: int  # in underlay.uplinks
    uplink: Uplink

    @property
    def path(self) -> str:
        return f"underlay.uplinks[{self.index}]"

    def __str__(self) -> str:
        return f"{self.node}:{self.uplink.name}"


@dataclass(frozen=True)
class Adjacency:
    """A leaf-spine link both ends configure: what the overlay checks walk."""

    link: FabricLink
    spine: Port
    leaf: Port

    @property
    def mtu(self) -> int:
        return min(self.spine.uplink.mtu, self.leaf.uplink.mtu)


class Fabric:
    """The topology and the intents of its switches, indexed for the checks."""

    def __init__(self, topo: Topology, intents: Mapping[str, Intent], unread: Iterable[str] = ()) -> None:
        self.topo = topo
        self.unread = set(unread)  # switches whose intent did not load (already reported)
        self.intents = {n.name: intents[n.name] for n in topo.switches if n.name in intents}
        self.ports = {
            name: {u.name: Port(name, i, u) for i, u in enumerate(intent.underlay.uplinks)}
            for name, intent in self.intents.items()
        }
        self.adjacencies: list[Adjacency] = []  # filled by the link checks
        self.stale_ids: dict[tuple[str, ipaddress.IPv4Address], list[Port]] = defaultdict(list)  # ... and this
        self._leaves = [n for n, i in self.intents.items() if i.node.role == "leaf" and i.overlay is not None]
        self._spines = [n for n, i in self.intents.items() if i.node.role == "spine"]

    def port(self, ep: Endpoint) -> Port | None:
        return self.ports.get(ep.node, {}).get(ep.iface)

    def leaves(self) -> list[str]:
        """The leaves with an intent, in topology order."""
        return self._leaves

    def spines(self) -> list[str]:
        return self._spines


def check_fabric(topo: Topology, intents: Mapping[str, Intent], unread: Iterable[str] = ()) -> list[Finding]:
    """Everything wrong between the switches of `topo` whose `intents` are given.

    `unread` names switches whose intent could not be loaded (already reported): they are not missing.
    """
    from tor_agent.fabric.check_overlay import check_overlay

    f = Findings()
    fabric = Fabric(topo, intents, unread)
    _coverage(fabric, intents, fabric.unread, f)
    for link in topo.fabric_links:
        _link(fabric, link, f)
    _stale_router_ids(fabric, f)
    _stray_uplinks(fabric, f)
    _overlaps(fabric, f)
    _unique(fabric, f)
    check_overlay(fabric, f)
    return f.items


def _coverage(fabric: Fabric, intents: Mapping[str, Intent], unread: set[str], f: Findings) -> None:
    topo = fabric.topo
    for node in topo.switches:
        intent = intents.get(node.name)
        if intent is None:
            if node.name not in unread:
                f.error(node.name, f"no intent for this {node.role} of {topo.source}", [node.name])
        elif intent.node.role != node.role:
            f.error(
                node.name,
                f"its intent says node.role {intent.node.role} but {topo.source} labels it {node.role}",
                [node.name],
            )
    for name in intents:
        if name not in topo.nodes or topo.nodes[name].role not in ("spine", "leaf"):
            f.error(name, f"has an intent but is no spine or leaf of {topo.source}", [name])


# --- both ends of every link --------------------------------------------------------------------------


def _link(fabric: Fabric, link: FabricLink, f: Findings) -> None:
    if link.spine.node not in fabric.intents or link.leaf.node not in fabric.intents:
        return
    spine, leaf = fabric.port(link.spine), fabric.port(link.leaf)
    subject, both = f"link {link}", [link.spine.node, link.leaf.node]
    if spine is None and leaf is None:
        f.error(
            subject,
            f"neither end has an uplink on it (add {link.spine.iface} to {link.spine.node}'s and "
            f"{link.leaf.iface} to {link.leaf.node}'s underlay.uplinks)",
            both,
        )
        return
    if spine is None or leaf is None:
        have, lack = (spine, link.leaf) if spine is not None else (leaf, link.spine)
        assert have is not None
        f.error(
            subject,
            f"unpaired: {have} is {have.path} ({_address(have.uplink)}) but {lack.node} has no uplink {lack.iface}",
            both,
        )
        return
    fabric.adjacencies.append(Adjacency(link, spine, leaf))
    _addresses(subject, spine, leaf, f)
    if spine.uplink.mtu != leaf.uplink.mtu:
        f.error(
            subject,
            f"mtu differs: {spine.uplink.mtu} on {spine.node} ({spine.path}.mtu), "
            f"{leaf.uplink.mtu} on {leaf.node} ({leaf.path}.mtu): OSPF never gets past ExStart",
            both,
        )
    ospf_s, ospf_l = (fabric.intents[p.node].underlay.ospf for p in (spine, leaf))
    for field, value in _OSPF_FIELDS.items():
        if value(ospf_s) != value(ospf_l):
            f.error(
                subject,
                f"OSPF {field} differs: {value(ospf_s)} on {spine.node}, {value(ospf_l)} on {leaf.node} "
                f"(underlay.ospf.{field})",
                both,
            )
    _keys(subject, spine, leaf, fabric, f)
    for here, there in ((spine, leaf), (leaf, spine)):
        _neighbour(subject, here, there, fabric, f)


def _neighbour(subject: str, here: Port, there: Port, fabric: Fabric, f: Findings) -> None:
    """The neighbour an uplink expects is the switch and port the topology links it to, with that switch's
    router ID (stale router IDs are reported once per switch, by `_stale_router_ids`)."""
    expected = here.uplink.neighbour
    if expected is None:
        return
    far = fabric.intents[there.node].node
    if (expected.node, expected.port) != (far.hostname, there.uplink.name):
        f.error(
            subject,
            f"{here} expects {expected.node}:{expected.port} at its far end ({here.path}.neighbour) but the "
            f"topology links it to {far.hostname}:{there.uplink.name}",
            [here.node, there.node],
        )
    elif expected.router_id != far.router_id:
        fabric.stale_ids[(there.node, expected.router_id)].append(here)


def _stale_router_ids(fabric: Fabric, f: Findings) -> None:
    for (node, old), ports in fabric.stale_ids.items():
        now = fabric.intents[node].node.router_id
        f.error(
            f"router ID {now}",
            f"{node}'s intent has {now}, but {names([str(p) for p in ports], limit=4)} "
            f"expect{'s' if len(ports) == 1 else ''} {old} "
            "(underlay.uplinks[].neighbour.router_id): render the fabric again",
            [node, *dict.fromkeys(p.node for p in ports)],
        )


def _address(u: Uplink) -> str:
    return "unnumbered" if u.address is None else str(u.address)


def _addresses(subject: str, a: Port, b: Port, f: Findings) -> None:
    both = [a.node, b.node]
    ua, ub = a.uplink, b.uplink
    if ua.address is None or ub.address is None:
        if (ua.address is None) != (ub.address is None):
            f.error(
                subject, f"unpaired: {a} is {_address(ua)} but {b} is {_address(ub)} (number both or neither)", both
            )
        return
    if ua.address.ip == ub.address.ip:
        f.error(subject, f"both ends have {ua.address.ip} ({a} and {b}): each end needs its own address", both)
    elif ua.address.network != ub.address.network:
        f.error(
            subject,
            f"unpaired addresses: {a} has {ua.address}, {b} has {ub.address}: not one subnet "
            f"(give {b} the other address of {ua.address.network})",
            both,
        )


def _ospf_auth(o: Ospf) -> str:
    return "none" if o.authentication is None else f"MD5 key_id {o.authentication.key_id}"


def _keys(subject: str, spine: Port, leaf: Port, fabric: Fabric, f: Findings) -> None:
    """Same key ID, different keys: the adjacency never forms. The keys themselves are never printed."""
    a, b = (fabric.intents[p.node].underlay.ospf.authentication for p in (spine, leaf))
    if a is not None and b is not None and a.key_id == b.key_id and a.key != b.key:
        f.error(
            subject,
            f"OSPF authentication keys differ: {spine.node} reads {a.key_file}, {leaf.node} reads {b.key_file} "
            "(underlay.ospf.authentication.key_file; keys not shown)",
            [spine.node, leaf.node],
        )


def _bfd(o: Ospf) -> str:
    b = o.bfd
    if b is None or not b.enabled:
        return "off"
    return f"rx {b.rx_ms} ms, tx {b.tx_ms} ms, x{b.multiplier}"


_OSPF_FIELDS: dict[str, Callable[[Ospf], object]] = {
    "area": lambda o: o.area,
    "hello_interval_s": lambda o: o.hello_interval_s or FRR_HELLO_S,
    "dead_interval_s": lambda o: o.dead_interval_s or FRR_DEAD_S,
    "authentication": _ospf_auth,
    "bfd": _bfd,
}


def _stray_uplinks(fabric: Fabric, f: Findings) -> None:
    """Uplinks on interfaces the topology does not link to a spine (or leaf)."""
    topo = fabric.topo
    linked = {ep for lk in topo.fabric_links for ep in (lk.spine, lk.leaf)}
    hosts = {lk.leaf: lk.host for lk in topo.access_links}
    for name, ports in fabric.ports.items():
        for port in ports.values():
            ep = Endpoint(name, port.uplink.name)
            if ep in linked:
                continue
            why = f"faces {hosts[ep].node}, a host" if ep in hosts else "is on no link of the topology"
            f.error(f"{name}: {port.path}", f"{port.uplink.name} ({_address(port.uplink)}) {why}", [name])


# --- addresses across the fabric ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    owner: str  # "link spine1:eth1 -- leaf1:eth1" or "leaf1:eth7"
    network: ipaddress.IPv4Network
    nodes: tuple[str, ...]


def _spans(fabric: Fabric) -> list[_Span]:
    """The subnet of every numbered uplink, once per link (both ends of a link agree or are reported)."""
    owners: dict[tuple[str, str], str] = {}
    for lk in fabric.topo.fabric_links:
        owners[(lk.spine.node, lk.spine.iface)] = owners[(lk.leaf.node, lk.leaf.iface)] = f"link {lk}"
    spans: dict[tuple[str, ipaddress.IPv4Network], _Span] = {}
    for name, ports in fabric.ports.items():
        for port in ports.values():
            if port.uplink.address is None:
                continue
            net = port.uplink.address.network
            owner = owners.get((name, port.uplink.name), str(port))
            span = spans.get((owner, net))
            nodes = (*span.nodes, name) if span else (name,)
            spans[(owner, net)] = _Span(int(net.network_address), int(net.broadcast_address), owner, net, nodes)
    return sorted(spans.values(), key=lambda s: (s.start, s.end, natural_key(s.owner)))


def _overlaps(fabric: Fabric, f: Findings) -> None:
    spans = _spans(fabric)
    active: list[_Span] = []
    for span in spans:
        active = [a for a in active if a.end >= span.start]
        for other in active:
            if other.owner != span.owner:
                f.error(
                    other.owner,
                    f"{other.network} overlaps {span.owner} ({span.network}): every link needs its own subnet",
                    sorted({*other.nodes, *span.nodes}, key=natural_key),
                )
        active.append(span)
    starts = [s.start for s in spans]
    reach: list[int] = []
    for s in spans:
        reach.append(max(s.end, reach[-1]) if reach else s.end)
    for name, intent in fabric.intents.items():
        ip = int(intent.node.loopback.ip)
        j = bisect.bisect_right(starts, ip) - 1
        while j >= 0 and reach[j] >= ip:  # no span at or before j reaches ip once reach[j] < ip
            span = spans[j]
            if span.end >= ip:
                f.error(
                    span.owner,
                    f"{span.network} holds {name}'s loopback {intent.node.loopback.ip} (node.loopback)",
                    sorted({*span.nodes, name}, key=natural_key),
                )
            j -= 1


def _unique(fabric: Fabric, f: Findings) -> None:
    fields: dict[str, Callable[[Intent], object]] = {
        "router ID": lambda i: i.node.router_id,
        "loopback": lambda i: i.node.loopback.ip,
        "DPID": lambda i: i.overlay.dpid if i.overlay else None,
    }
    paths = {"router ID": "node.router_id", "loopback": "node.loopback", "DPID": "overlay.dpid"}
    for what, value in fields.items():
        users: dict[object, list[str]] = defaultdict(list)
        for name, intent in fabric.intents.items():
            if value(intent) is not None:
                users[value(intent)].append(name)
        for v, nodes in users.items():
            if len(nodes) > 1:
                f.error(
                    f"{what} {v}",
                    f"is used by {names(nodes)} ({paths[what]}): each switch needs its own",
                    nodes,
                )
    hostnames: dict[str, list[str]] = defaultdict(list)
    for name, intent in fabric.intents.items():
        hostnames[intent.node.hostname].append(name)
    for hostname, nodes in hostnames.items():
        if len(nodes) > 1:
            f.warning(f"hostname {hostname}", f"is node.hostname of {names(nodes)}", nodes)

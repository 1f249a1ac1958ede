"""Cross-switch checks of the overlay: VTEP reach, tenant MTU on every path, spine paths, controllers."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from tor_agent.config.schema import Intent
from tor_agent.config.validate_overlay import gre_overhead
from tor_agent.fabric.check import Adjacency, Fabric
from tor_agent.fabric.findings import Findings, names
from tor_agent.fabric.yamlfile import natural_key


def check_overlay(fabric: Fabric, f: Findings) -> None:
    """The overlay checks; `fabric.adjacencies` holds the links both ends configure."""
    _vtep_prefixes(fabric, f)
    _tunnel_reach(fabric, f)
    _tunnel_agreement(fabric, f)
    _tenant_mtu(fabric, f)
    _spine_paths(fabric, f)
    _controllers(fabric, f)
    _access_ports(fabric, f)


def _sorted(nodes: set[str] | list[str]) -> list[str]:
    return sorted(nodes, key=natural_key)


# --- which leaves each leaf builds a tunnel to --------------------------------------------------------


@dataclass(frozen=True)
class _Tunnels:
    prefix: ipaddress.IPv4Network | None
    peers: frozenset[ipaddress.IPv4Address]

    def reach(self, vtep: ipaddress.IPv4Address) -> bool:
        return vtep in self.peers or (self.prefix is not None and vtep in self.prefix)


def _tunnels(intent: Intent) -> _Tunnels:
    assert intent.overlay is not None
    t = intent.overlay.tunnels
    return _Tunnels(t.discover.ospf_prefix if t.discover else None, frozenset(t.peers))


def _groups(fabric: Fabric) -> dict[_Tunnels, list[str]]:
    """Leaves by how they find their peers (one group when every leaf has the same prefix)."""
    groups: dict[_Tunnels, list[str]] = defaultdict(list)
    for name in fabric.leaves():
        groups[_tunnels(fabric.intents[name])].append(name)
    return groups


def _vtep_prefixes(fabric: Fabric, f: Findings) -> None:
    """No spine loopback inside a VTEP prefix, no spine (or unknown address) among static peers."""
    spines = {fabric.intents[s].node.loopback.ip: s for s in fabric.spines()}
    leaves = {fabric.intents[n].node.loopback.ip: n for n in fabric.leaves()}
    for tunnels, group in _groups(fabric).items():
        if tunnels.prefix is not None:
            for vtep, spine in spines.items():
                if vtep in tunnels.prefix:
                    f.error(
                        f"VTEP prefix {tunnels.prefix}",
                        f"holds {spine}'s loopback {vtep}: {names(group)} would build a tunnel to a spine "
                        "(keep spine loopbacks outside overlay.tunnels.discover.ospf_prefix)",
                        [*group, spine],
                    )
        for peer in sorted(tunnels.peers):
            if peer in spines:
                what = f"is {spines[peer]}'s loopback: a tunnel to a spine"
            elif peer not in leaves:
                what = "is no leaf's loopback"
            else:
                continue
            f.error(f"tunnel peer {peer}", f"of {names(group)} (overlay.tunnels.peers) {what}", group)


def _tunnel_reach(fabric: Fabric, f: Findings) -> None:
    """Every leaf builds a tunnel to every other leaf."""
    vteps = {n: fabric.intents[n].node.loopback.ip for n in fabric.leaves()}
    for tunnels, group in _groups(fabric).items():
        for target, vtep in vteps.items():
            if tunnels.reach(vtep):
                continue
            blind = [n for n in group if n != target]
            if not blind:
                continue
            if tunnels.prefix is not None:
                why = f"is outside the VTEP prefix {tunnels.prefix} (overlay.tunnels.discover.ospf_prefix) of"
            else:
                why = "is not in overlay.tunnels.peers (and no VTEP is discovered) of"
            f.error(
                f"{target}'s loopback {vtep}",
                f"{why} {names(blind)}: they build no tunnel to {target}",
                [target, *blind],
            )


def _tunnel_agreement(fabric: Fabric, f: Findings) -> None:
    """GRE keys must match (packets with another key are dropped); tunnel BFD should."""
    for what, attr, error in (("key", "key", True), ("bfd", "bfd", False)):
        users: dict[object, list[str]] = defaultdict(list)
        for name in fabric.leaves():
            tunnels = fabric.intents[name].overlay.tunnels  # type: ignore[union-attr]
            users[getattr(tunnels, attr)].append(name)
        if len(users) < 2:
            continue
        parts = "; ".join(f"{_shown(v)} on {names(n)}" for v, n in users.items())
        if error:
            f.error(
                f"overlay.tunnels.{what}",
                f"differs between leaves: {parts}: tunnels between them drop every packet",
                fabric.leaves(),
            )
        else:
            f.warning(
                f"overlay.tunnels.{what}",
                f"differs between leaves: {parts}: tunnels between them report BFD down",
                fabric.leaves(),
            )


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "enabled" if value else "disabled"
    return "none" if value is None else str(value)


# --- paths through the spines -------------------------------------------------------------------------


def _need(intent: Intent) -> int:
    assert intent.overlay is not None
    t = intent.overlay.tunnels
    return t.tenant_mtu + gre_overhead(t.key is not None)


def _by_spine(fabric: Fabric) -> dict[str, list[Adjacency]]:
    found: dict[str, list[Adjacency]] = defaultdict(list)
    leaves, spines = set(fabric.leaves()), set(fabric.spines())
    for adj in fabric.adjacencies:
        if adj.leaf.node in leaves and adj.spine.node in spines:
            found[adj.spine.node].append(adj)
    return found


def _tenant_mtu(fabric: Fabric, f: Findings) -> None:
    """A tunnel from leaf A to leaf B crosses A's link to a spine and that spine's link to B: every leaf
    whose tunnels cross a link must fit its tenant frames plus encapsulation into that link's MTU."""
    needs = {n: _need(fabric.intents[n]) for n in fabric.leaves()}
    for spine, adjs in _by_spine(fabric).items():
        leaves = {a.leaf.node for a in adjs}
        heaviest = sorted(leaves, key=lambda n: (-needs[n], natural_key(n)))
        for adj in adjs:
            over = []
            for n in heaviest:  # the tunnels of every leaf at this spine cross the link (the far leaf's too,
                if needs[n] <= adj.mtu:  # when the spine has another leaf to reach)
                    break
                if n != adj.leaf.node or len(leaves) > 1:
                    over.append(n)
            if over:
                f.error(
                    f"link {adj.link}",
                    f"mtu {adj.mtu} is too small for the tunnels of {names(_sorted(over))} through {spine}: "
                    f"they need up to {needs[over[0]]} (overlay.tunnels.tenant_mtu plus GRE/IP/Ethernet); "
                    "raise the mtu of both ends or lower tenant_mtu",
                    [adj.spine.node, adj.leaf.node, *over],
                )


def _spine_paths(fabric: Fabric, f: Findings) -> None:
    """Warn when two leaves share fewer than two spines: one failure cuts or squeezes their tunnels."""
    spines_of: dict[str, set[str]] = {n: set() for n in fabric.leaves()}
    for spine, adjs in _by_spine(fabric).items():
        for adj in adjs:
            spines_of[adj.leaf.node].add(spine)
    for link in fabric.topo.fabric_links:  # a spine whose intent did not load: count its links as they are
        if link.spine.node in fabric.unread and link.leaf.node in spines_of:
            spines_of[link.leaf.node].add(link.spine.node)
    groups: dict[frozenset[str], list[str]] = defaultdict(list)
    for leaf, spines in spines_of.items():
        groups[frozenset(spines)].append(leaf)
    keys = list(groups)
    for i, a in enumerate(keys):
        for b in keys[i:]:
            if (a == b and len(groups[a]) < 2) or len(a & b) >= 2:
                continue
            common = _sorted(set(a & b))
            how = f"only one spine ({common[0]})" if common else "no spine (their tunnels cross another leaf)"
            verb = "share" if a == b or len(groups[b]) > 1 else "shares"
            partner = "" if a == b else f" with {names(groups[a])}"
            f.warning(
                names(groups[b]),
                f"{verb} {how}{partner}: one failure cuts them apart",
                [*groups[b], *(groups[a] if a != b else [])],
            )
    for leaf, spines in spines_of.items():
        paths = fabric.intents[leaf].underlay.ospf.maximum_paths
        if paths < len(spines):
            f.warning(
                leaf,
                f"underlay.ospf.maximum_paths {paths} is less than its {len(spines)} spines: ECMP uses only {paths}",
                [leaf],
            )


# --- controllers and access ports ---------------------------------------------------------------------


def _controllers(fabric: Fabric, f: Findings) -> None:
    topo = fabric.topo
    owners = {str(a): n for n in topo.nodes.values() for a in n.mgmt_addresses}
    controllers = {str(a): n.name for n in topo.role("controller") for a in n.mgmt_addresses}
    known = ", ".join(f"{n} {a}" for a, n in controllers.items()) or "none with a management address"
    for name in fabric.leaves():
        intent = fabric.intents[name]
        if intent.controllers is None:
            if controllers:
                f.warning(name, "has no controllers section: no controller programs its bridge", [name])
            continue
        for i, target in enumerate(intent.controllers.targets):
            host = str(ipaddress.ip_address(target.host))
            if host in controllers:
                continue
            other = owners.get(host)
            what = f"{other.name}'s management address, a {other.role}" if other else "no node's address"
            f.error(
                f"{name}: controllers.targets[{i}]",
                f"{target} is not a controller node: {host} is {what} (the topology's controllers: {known})",
                [name],
            )


def _access_ports(fabric: Fabric, f: Findings) -> None:
    topo = fabric.topo
    hosts = {(lk.leaf.node, lk.leaf.iface): lk.host for lk in topo.access_links}
    for name in fabric.leaves():
        overlay = fabric.intents[name].overlay
        assert overlay is not None
        for i, port in enumerate(overlay.access_ports):
            if (name, port) not in hosts:
                f.warning(f"{name}: overlay.access_ports[{i}]", f"{port} faces no host in the topology", [name])
        for (leaf, iface), host in hosts.items():
            if leaf == name and iface not in overlay.access_ports:
                f.warning(
                    f"{name}:{iface}",
                    f"faces {host.node} but is not in overlay.access_ports: the host is cut off",
                    [name],
                )

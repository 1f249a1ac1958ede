"""What a lab's topology file and its switches' intents say about the fabric, and whether it is healthy.

Roles come from the topology (label `tor-agent.role`), addresses from the intents (a switch's loopback, its
uplinks' /31s) and from the hosts' `exec` lines (a host's tenant address); health is every switch's own
`tor-agent verify`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from labs.labkit.nodes import INTENT, tor_agent
from labs.nslab.topology import Topology
from tor_agent.wait import wait_until

HEALTHY_BUDGET_S = 30.0  # BFD's slow start plus an OSPF adjacency coming back


def intent(topo: Topology, node: str) -> dict[str, Any]:
    """The node's intent file (the host file bound to /etc/tor-agent/agent.yaml) as plain data."""
    path = topo.nodes[node].intent_file()
    if path is None:
        raise RuntimeError(f"{node} has no intent file")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise RuntimeError(f"{path}: not a mapping")
    return data


def loopback(topo: Topology, node: str) -> str:
    """The switch's loopback address (a leaf's VTEP)."""
    return str(ipaddress.IPv4Interface(intent(topo, node)["node"]["loopback"]).ip)


def tenant_address(topo: Topology, host: str) -> str:
    """The host's tenant address: from its `exec` line (`ip address add 198.51.100.11/24 dev eth1`) or the
    IPv4 address the topology gives its link's endpoint."""
    found = [e.split()[3] for e in topo.nodes[host].exec if e.startswith("ip address add ")]
    found += [a for end, _, _ in topo.links_of(host) for a in end.addresses if ":" not in a]
    if len(found) != 1:
        raise RuntimeError(f"{host}: not one tenant address (an `ip address add` exec line or an endpoint ipv4)")
    return str(ipaddress.IPv4Interface(found[0]).ip)


@dataclass(frozen=True)
class FabricLink:
    """A leaf-spine link: the leaf's uplink and the spine's end of it."""

    leaf: str
    uplink: str  # the leaf's uplink (the physical port; OSPF may run on its bridge)
    spine: str
    spine_iface: str
    spine_address: str  # the spine's address on the link (the leaf's nexthop over it)

    def __str__(self) -> str:
        return f"{self.leaf}:{self.uplink} - {self.spine}:{self.spine_iface}"


def fabric_links(topo: Topology, leaf: str) -> list[FabricLink]:
    """Every uplink of `leaf` that the topology links to a spine, with the spine's address on it."""
    links = []
    uplinks = {u["name"] for u in intent(topo, leaf)["underlay"]["uplinks"]}
    for local, remote, _ in topo.links_of(leaf):
        if local.iface not in uplinks or topo.nodes[remote.node].role != "spine":
            continue
        spine_end = {u["name"]: u for u in intent(topo, remote.node)["underlay"]["uplinks"]}[remote.iface]
        address = str(ipaddress.IPv4Interface(spine_end["address"]).ip)
        links.append(FabricLink(leaf, local.iface, remote.node, remote.iface, address))
    return links


def switches(topo: Topology) -> list[str]:
    """Spines and leaves."""
    return [n.name for n in topo.by_role("spine")] + [n.name for n in topo.by_role("leaf")]


def every_switch(topo: Topology) -> dict[str, str]:
    """Every switch with its own intent file (what `verify` checks by default)."""
    return dict.fromkeys(switches(topo), INTENT)


def unhealthy(topo: Topology, configs: Mapping[str, str] | None = None) -> list[str]:
    """`tor-agent verify CONFIG` in each node of `configs` (default: every switch, its own intent): the failing
    ones with what they say."""
    bad = []
    for node, config in (configs if configs is not None else every_switch(topo)).items():
        done = tor_agent(topo, node, "verify", config)
        if done.returncode != 0:
            bad.append(f"{node}: exit {done.returncode}: {done.stdout.strip() or done.stderr.strip()}")
    return bad


def wait_healthy(topo: Topology, configs: Mapping[str, str] | None = None, timeout: float = HEALTHY_BUDGET_S) -> None:
    """Poll until `tor-agent verify` passes in every node of `configs` (default: every switch, own intent)."""
    configs = configs if configs is not None else every_switch(topo)
    wait_until(lambda: not unhealthy(topo, configs), timeout, 0.2, f"tor-agent verify to pass on {', '.join(configs)}")

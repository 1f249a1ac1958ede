"""`fabric.yaml`: the whole fabric as rendered, seen from one switch (pure).

Written beside each switch's `agent.yaml` so the switch can check what it sees (the area's LSDB: `tor-agent
verify --fabric`, read back by `tor_agent.fabric.planned`) against what was planned: every node with its
role, router ID and loopback, every leaf-spine link with both ends' ports, addresses and OSPF costs, and,
for this switch, the neighbour expected on each uplink.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tor_agent.config.schema import Intent, Uplink
from tor_agent.fabric.topology import FabricLink, Topology
from tor_agent.fabric.yamlfile import Flow, dump, natural_key

VIEW_FILE = "fabric.yaml"
VIEW_VERSION = 1
HEADER = (
    "The fabric {fabric} as `tor-agent fabric render` planned it, seen from {name}: what {name} should\n"
    "find at the far end of each uplink, and every node and leaf-spine link. Read by tor-agent verify --fabric."
)


def fabric_views(topo: Topology, intents: Mapping[str, Intent]) -> dict[str, str]:
    """The text of every switch's fabric.yaml. The part every switch shares (nodes, links) is written once:
    a fabric of N switches has N files of O(N) lines each."""
    ports = {n: {u.name: u for u in i.underlay.uplinks} for n, i in intents.items()}
    links = [lk for lk in topo.fabric_links if lk.spine.node in intents and lk.leaf.node in intents]
    shared = dump({"nodes": [_node(n, intents[n]) for n in intents], "links": [_link(lk, ports) for lk in links]}, "")
    views = {}
    for name in intents:
        mine = sorted((lk for lk in links if name in (lk.spine.node, lk.leaf.node)), key=lambda lk: _mine(lk, name))
        head = {
            "version": VIEW_VERSION,
            "fabric": topo.name,
            "node": name,
            "uplinks": [_neighbour(lk, name, ports, intents) for lk in mine],
        }
        views[name] = dump(head, HEADER.format(fabric=topo.name, name=name)) + shared
    return views


def _mine(link: FabricLink, name: str) -> tuple[tuple[int, int | str], ...]:
    return natural_key(link.end(name).iface)


def _address(uplink: Uplink | None) -> dict[str, Any]:
    if uplink is None or uplink.address is None:
        return {"unnumbered": True}
    return {"address": str(uplink.address)}


def _neighbour(
    link: FabricLink, name: str, ports: Mapping[str, Mapping[str, Uplink]], intents: Mapping[str, Intent]
) -> dict[str, Any]:
    here, there = link.end(name), link.other(name)
    far = intents[there.node].node
    neighbour = {"node": there.node, "router_id": str(far.router_id), "port": there.iface}
    return {
        "name": here.iface,
        **_address(ports[name].get(here.iface)),
        "neighbour": Flow({**neighbour, **_address(ports[there.node].get(there.iface))}),
    }


def _node(name: str, intent: Intent) -> Flow:
    node = intent.node
    return Flow({"name": name, "role": node.role, "router_id": str(node.router_id), "loopback": str(node.loopback)})


def _link(link: FabricLink, ports: Mapping[str, Mapping[str, Uplink]]) -> Flow:
    ends = {}
    for role, ep in (("spine", link.spine), ("leaf", link.leaf)):
        uplink = ports[ep.node].get(ep.iface)
        cost = {"cost": uplink.cost} if uplink is not None and uplink.cost is not None else {}
        ends[role] = Flow({"node": ep.node, "port": ep.iface, **_address(uplink), **cost})
    mtu = next((u.mtu for u in (ports[link.spine.node].get(link.spine.iface),) if u is not None), link.mtu)
    return Flow({**ends, "mtu": mtu})
